"""The one way infra/ tells a person what a job is doing: a line with the job's prefix (`[stack] ...`,
`==> ...`, `[bench 01:05] ...`), flushed at once so it lands in order among the lines of the processes the
job starts (their output shares the terminal, or the pipe a test reads)."""
from __future__ import annotations

import sys
import time
from typing import Callable

Say = Callable[[str], None]
"""What a function that reports progress takes as `say=`: a printer from here, or `lambda _m: None` in tests."""


def say(message: str, prefix: str = "==>", stderr: bool = False) -> None:
    # The stream is looked up at each call, not bound at import: a redirect (or pytest's capsys) replaces it.
    print(f"{prefix} {message}", file=sys.stderr if stderr else sys.stdout, flush=True)


def printer(prefix: str, stderr: bool = False) -> Say:
    """A `say` for one job: `say = printer("[stack]")`; stderr where the job's stdout is its data (a feed)."""
    def say_with_prefix(message: str) -> None:
        say(message, prefix, stderr)
    return say_with_prefix


def elapsed_prefix(label: str, seconds: float) -> str:
    """`[bench 01:05]`: the job and how long it has run, minutes past 59 kept as minutes (`[bench 61:05]`)."""
    return f"[{label} {int(seconds // 60):02d}:{int(seconds % 60):02d}]"


def timed_printer(label: str, started: float | None = None, clock: Callable[[], float] = time.monotonic) -> Say:
    """A `say` whose prefix carries the time since `started` (a `clock()` reading; now when omitted)."""
    start = clock() if started is None else started

    def say_with_elapsed(message: str) -> None:
        say(message, elapsed_prefix(label, clock() - start))
    return say_with_elapsed
