"""Is a process (or its group, or its children) still there? Asked portably, for the stack's parts:
signal 0 for a pid or a process group, psutil for children; no process-table walk through /proc
(macOS has none)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil


def reap(pid: int) -> None:
    """Collect the exit status of a child of this process that has exited: a zombie still answers
    signals, so it would look alive (up() and the tests start the parts in-process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: whoever started it (or init) reaps it
        pass


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    reap(pid)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def group_alive(pgid: int) -> bool:
    """Does any process of this process group live on (its leader, or a child such as a MiniStack
    Lambda worker)? Signal 0 to the group asks the kernel."""
    reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal still exists
        return True
    return True


def with_children(pid: int) -> list[int]:
    """``pid`` and its descendants (PostgreSQL's backends call setsid(), so its group alone misses them)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return [pid]


def gone(pid: int) -> bool:
    """Exited and reaped: the pid no longer exists at all."""
    reap(pid)
    return not psutil.pid_exists(pid)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_group(pgid: int, steps: Iterable[tuple[signal.Signals, float]], *,
               targets: Callable[[signal.Signals], list[int]] | None = None,
               on_timeout: Callable[[signal.Signals], None] | None = None) -> None:
    """Send each (signal, seconds to wait) of `steps` in turn until process group `pgid` is gone:
    to the whole group, or to the pids `targets(signal)` names (a server whose children leave its
    group). `on_timeout(signal)` is told when a signal's wait ran out and the next one follows."""
    for sig, wait in steps:
        if targets is None:
            if not signal_group(pgid, sig):
                return
        else:
            for pid in targets(sig):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.1)
        if not group_alive(pgid):
            return
        if on_timeout is not None:
            on_timeout(sig)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a part's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
