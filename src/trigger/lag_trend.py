"""Whether the trigger is falling behind: the lag has grown for a minute, with the rates in and out.

Fed by the status line (every TRIGGER_STATUS_INTERVAL_S) with the lag and the committed count. A
producer that writes whole snapshots makes the lag jump and fall back every few seconds, so the
lag's low points are compared (the start of the minute against its end), not single readings.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class FallingBehind:
    lag_before: int
    lag_now: int
    seconds: float
    rate_in: float      # records/s arriving (committed + lag growth)
    rate_out: float     # records/s committed (handled or dead-lettered)

    def advice(self, batch_size: int) -> str:
        return (f"falling behind: the lag grew from {self.lag_before:,} to {self.lag_now:,} in {self.seconds:.0f} s "
                f"(in {self.rate_in:,.0f} records/s, out {self.rate_out:,.0f} records/s). To keep up: a bigger batch "
                f"(--batch-size, now {batch_size:,}; TRIGGER_BATCH_SIZE), or less input: fewer aircraft or a slower "
                f"cadence on the producer (--aircraft, --interval)")


class LagTrend:
    """Keeps a minute of (time, lag, committed) readings: a bounded deque, never more than the window."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, int, int]] = deque()
        self._warned_at: float | None = None

    def observe(self, now: float, lag: int, committed: int) -> FallingBehind | None:
        """Add a reading; a FallingBehind at most once a window while the lag keeps growing."""
        self._readings.append((now, lag, committed))
        while len(self._readings) > 2 and now - self._readings[1][0] >= self.window_s:
            self._readings.popleft()
        first_t, first_lag, first_committed = self._readings[0]
        span = now - first_t
        if span < self.window_s or len(self._readings) < 3:
            return None
        third = span / 3
        early = min(l for t, l, _ in self._readings if t <= first_t + third)
        late = min(l for t, l, _ in self._readings if t >= now - third)
        rate_out = (committed - first_committed) / span
        rate_in = rate_out + (lag - first_lag) / span
        if not (late > early and rate_in > rate_out):
            self._warned_at = None
            return None
        if self._warned_at is not None and now - self._warned_at < self.window_s:
            return None
        self._warned_at = now
        return FallingBehind(first_lag, lag, span, rate_in, rate_out)
