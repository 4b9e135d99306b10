"""Counters shared by the consumer loop and the invoke workers, and the periodic status line."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TriggerStats:
    """A snapshot; every count is since the trigger started."""
    consumed: int = 0          # records read from Kafka (filtered ones included)
    filtered: int = 0          # records that matched no filter of FilterCriteria: committed, never invoked
    invoked_records: int = 0   # records sent to the function, retries included
    invocations: int = 0       # invoke calls, infrastructure failures included
    succeeded: int = 0         # records the function accepted
    retries: int = 0           # re-invocations (function errors, item failures, throttling, endpoint down)
    function_errors: int = 0   # invocations that ended in FunctionError
    endpoint_errors: int = 0   # invocations that never reached the function (throttled, down, rejected)
    dead_lettered: int = 0     # records sent to the on-failure destination(s)
    dropped: int = 0           # records that exhausted retries with no destination configured (discarded)
    committed: int = 0         # records whose offsets are committed
    lag: int = 0               # sum over assigned partitions of end offset - committed offset
    lag_max: int = 0
    lag_by_partition: dict = field(default_factory=dict)
    invoke_p50_ms: float = 0.0
    invoke_p99_ms: float = 0.0


def percentile(sorted_values, q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values), max(1, math.ceil(q / 100 * len(sorted_values)))) - 1
    return sorted_values[rank]


class StatsCollector:
    """Thread-safe counters; `snapshot()` gives a TriggerStats."""

    _COUNTERS = ("consumed", "filtered", "dropped", "invoked_records", "invocations", "succeeded", "retries", "function_errors",
                 "endpoint_errors", "dead_lettered", "committed")

    def __init__(self, latency_window: int = 4096) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._COUNTERS, 0)
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._lag: dict[str, int] = {}
        self._last_status = (time.monotonic(), 0)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self._counts[name] += value

    def invoke_latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def set_lag(self, lag_by_partition: dict[str, int]) -> None:
        with self._lock:
            self._lag = dict(lag_by_partition)

    def snapshot(self) -> TriggerStats:
        with self._lock:
            counts = dict(self._counts)
            latencies = sorted(self._latencies)
            lag = dict(self._lag)
        return TriggerStats(**counts, lag=sum(lag.values()), lag_max=max(lag.values(), default=0),
                            lag_by_partition=lag, invoke_p50_ms=percentile(latencies, 50) * 1000,
                            invoke_p99_ms=percentile(latencies, 99) * 1000)

    def rate(self) -> float:
        """Records handled per second since the previous call (succeeded + dead-lettered)."""
        now = time.monotonic()
        with self._lock:
            done = self._counts["succeeded"] + self._counts["dead_lettered"]
            then, before = self._last_status
            self._last_status = (now, done)
        return (done - before) / (now - then) if now > then else 0.0
