"""The typical session's long-running parts as `make up` starts them, and the command each one runs.

A part's command is what its make target runs (`make -n <target>`, infra/soak/session.py's
make_command), so `make up` starts exactly what a user starts in a terminal, with the Makefile's own
defaults. Kept apart from infra/session/up.py so another runner of the session (the soak) can share it.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass

from infra.soak.session import make_command

# Both event source mappings (flight-processor and flight-alerts) in one trigger process, as
# `make trigger MAPPINGS=...` runs them.
MAPPINGS = "infra/aws/template.yaml"


@dataclass(frozen=True)
class SessionPart:
    name: str                                  # how `make ps` and `make logs PART=...` call it
    target: str                                # its make target
    make_vars: tuple[tuple[str, str], ...] = ()  # make variables its target reads (MAPPINGS=...)
    # The printers stop on Ctrl-C (SIGINT) and then say how many they received; the services stop
    # cleanly (final commit, consumer close) on SIGTERM.
    stop_signal: int = signal.SIGTERM
    # The printers' output is data, a line per message (~70 notifications/s by default): followed only
    # when asked for by name, or it would drown the services' lines.
    prints_data: bool = False


# Consumers first, so the producer's first records find their groups; the producer last.
# The two printers are in the session because they are the demo subscribers that read (and so empty)
# the notification and alert queues: MiniStack drops a message past its queue's retention only when the
# queue is read, so an unread notification queue would grow by every notification (~70/s by default)
# for as long as the session runs. Their output is what `make logs PART=notifications|alerts` shows.
UP_SESSION = (
    SessionPart("trigger", "trigger", (("MAPPINGS", MAPPINGS),)),
    SessionPart("tracker", "tracker"),
    SessionPart("archiver", "archiver"),
    SessionPart("notifications", "notifications", stop_signal=signal.SIGINT, prints_data=True),
    SessionPart("alerts", "alerts", stop_signal=signal.SIGINT, prints_data=True),
    SessionPart("producer", "produce"),
)


def part_named(name: str) -> SessionPart:
    for part in UP_SESSION:
        if part.name == name:
            return part
    raise KeyError(name)


def command(part: SessionPart, env: dict[str, str]) -> list[str]:
    """The command `make <target>` runs for this part, with its make variables (ARGS always empty:
    an ARGS given to `make up` is for `make up`)."""
    argv = make_command(part.target, "", {**env, **dict(part.make_vars)})
    if argv is None:
        raise RuntimeError(f"the session needs `make {part.target}`, which this Makefile does not have")
    return argv
