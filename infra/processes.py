"""Is a process (or its group, or its children) still there? Asked portably, for the stack's parts:
signal 0 for a pid or a process group, psutil for children; no process-table walk through /proc
(macOS has none)."""
from __future__ import annotations

import os

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
