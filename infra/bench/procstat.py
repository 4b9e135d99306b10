"""CPU seconds and peak memory of the processes a benchmark runs on, read from /proc (Linux).

The CPU split says where the machine's cores went during a section (MiniStack, the function's
worker processes, the trigger, the producer, the broker, everything else); `Child` runs the
producer or trigger as a subprocess whose CPU time and peak resident memory (VmHWM) are known
exactly, even after it has exited.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

logger = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (not its children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_time_s(pid: int) -> float | None:
    """When the process started, in seconds since boot (comparable with `uptime_s()`)."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19]) / CLK_TCK


def uptime_s() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size so far, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def pids_matching(fragment: str) -> list[int]:
    """Processes whose command line contains `fragment`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and fragment in cmdline(int(entry.name)):
            found.append(int(entry.name))
    return found


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, summed over cores: "busy" (running anything, this
    machine's own processes), "steal" (the hypervisor gave the time to another machine) and "total"."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])  # guest time is already inside user/nice
    return {"busy": (total - values[3] - values[4] - steal) / CLK_TCK, "steal": steal / CLK_TCK,
            "total": total / CLK_TCK}


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores; stolen time counts as
    busy (the benchmarks' "other")."""
    cpu = machine_cpu()
    return cpu["busy"] + cpu["steal"], cpu["total"]


class Child:
    """A subprocess (producer, trigger, loader) with exact CPU seconds and peak RSS."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=cwd)
        self.pid = self._proc.pid
        self.started = time.monotonic()
        self.returncode: int | None = None
        self._cpu_s = 0.0
        self._peak_mb = 0.0
        self.ended: float | None = None

    def sample(self) -> None:
        """Read CPU and VmHWM while the process runs (the last reading survives its exit)."""
        if self.returncode is not None:
            return
        cpu, peak = cpu_seconds(self.pid), peak_rss_mb(self.pid)
        if cpu is not None:
            self._cpu_s = max(self._cpu_s, cpu)
        if peak is not None:
            self._peak_mb = max(self._peak_mb, peak)

    @property
    def cpu_s(self) -> float:
        return self._cpu_s

    @property
    def peak_rss_mb(self) -> float:
        return self._peak_mb

    def alive(self) -> bool:
        return self.poll() is None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.sample()
            self._reap(os.WNOHANG)
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status, usage = os.wait4(self.pid, flags)
        except ChildProcessError:
            self.returncode = self._proc.returncode if self._proc.returncode is not None else -1
            return
        if pid == 0:
            return
        # wait4's CPU times are exact, including the time after the last /proc sample. Its ru_maxrss is
        # not used: Linux counts the pre-exec copy of the parent in it (the harness's own RSS at fork),
        # so the peak stays the child's VmHWM as last read from /proc.
        self._cpu_s = max(self._cpu_s, usage.ru_utime + usage.ru_stime)
        self.returncode = os.waitstatus_to_exitcode(status)
        self._proc.returncode = self.returncode
        self.ended = time.monotonic()

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return self.returncode

    def signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the components finish their work in flight), then SIGKILL if it hangs."""
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            logger.warning("%s (pid %d) did not stop within %.0fs; killing it", self.name, self.pid, timeout)
            self.signal(signal.SIGKILL)
            self.wait(10)
        return self.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


PidSource = Callable[[], Iterable[int]]


@dataclass
class CpuSplit:
    """CPU seconds per group over `wall_s`; `other` is the rest of the machine's busy time."""
    wall_s: float
    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy_s: float = 0.0
    cores: int = 1

    @property
    def other_s(self) -> float:
        return max(0.0, self.machine_busy_s - sum(self.seconds.values()))

    def share(self, name: str) -> float:
        """Cores used on average (1.0 = one core fully busy)."""
        return self.seconds.get(name, 0.0) / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 2), "cores": self.cores,
                "cpu_s": {k: round(v, 2) for k, v in self.seconds.items()},
                "other_s": round(self.other_s, 2), "machine_busy_s": round(self.machine_busy_s, 2),
                "machine_busy_cores": round(self.machine_busy_s / self.wall_s, 2) if self.wall_s else 0.0}


class CpuMeter:
    """Samples groups of processes from start() to stop() and returns a CpuSplit.

    A group is a `Child` (exact figures) or a callable giving its current pids (MiniStack, the
    broker, the function's worker processes, which MiniStack may start while the meter runs).
    """

    def __init__(self, groups: dict[str, "Child | PidSource"], interval_s: float = 0.5) -> None:
        self.groups = groups
        self.interval_s = interval_s
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._owner: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _sample(self, first: bool = False) -> None:
        for name, source in self.groups.items():
            if isinstance(source, Child):
                source.sample()
                continue
            try:
                pids = list(source())
            except Exception:  # noqa: BLE001 - a vanished /proc entry or pid file must not end the run
                logger.debug("pid lookup for %s failed", name, exc_info=True)
                continue
            for pid in pids:
                cpu = cpu_seconds(pid)
                if cpu is None:
                    continue
                with self._lock:
                    if pid not in self._base:
                        born = start_time_s(pid)
                        # A process born after start() counts from zero; one that existed counts from now.
                        self._base[pid] = 0.0 if (not first and born is not None and born >= self._t0_uptime) \
                            else cpu
                        self._owner[pid] = name
                    self._last[pid] = cpu

    def _totals(self) -> dict[str, float]:
        """CPU seconds of each group since start(), as of the latest sample."""
        totals = {name: 0.0 for name in self.groups}
        with self._lock:
            for pid, last in self._last.items():
                totals[self._owner[pid]] += max(0.0, last - self._base[pid])
        for name, source in self.groups.items():
            if isinstance(source, Child):
                totals[name] = source.cpu_s - self._child_base.get(name, 0.0)
        return totals

    def _record(self) -> None:
        self.series.append((time.monotonic(), self._totals(), system_cpu()[0]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()
            self._record()

    def window(self, t0: float, t1: float) -> CpuSplit | None:
        """The CPU split between two moments (time.monotonic()), from the samples closest inside them:
        the steady part of a run, without its start-up and tail."""
        inside = [s for s in self.series if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return None
        (a_t, a_cpu, a_busy), (b_t, b_cpu, b_busy) = inside[0], inside[-1]
        return CpuSplit(b_t - a_t, {k: max(0.0, b_cpu[k] - a_cpu.get(k, 0.0)) for k in b_cpu}, b_busy - a_busy,
                        os.cpu_count() or 1)

    def start(self) -> "CpuMeter":
        self._t0 = time.monotonic()
        self._t0_uptime = uptime_s()
        self._busy0, _ = system_cpu()
        self._sample(first=True)
        self._child_base = {name: source.cpu_s for name, source in self.groups.items() if isinstance(source, Child)}
        self.series: list[tuple[float, dict[str, float], float]] = []
        self._record()
        self._thread = threading.Thread(target=self._run, name="bench-cpu-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> CpuSplit:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        self._record()
        wall = time.monotonic() - self._t0
        busy1, _ = system_cpu()
        return CpuSplit(wall, self._totals(), busy1 - self._busy0, os.cpu_count() or 1)
