"""The soak's pass/fail arithmetic on its samples: pure functions, tested on synthetic series.

A series is a list of (seconds since the start, value). The gates (after the warm-up):
  * lag: over the second half, the consumer group's lag must not keep growing;
  * memory: no process may grow faster than 1 MB/min (a Theil-Sen slope: the median of the slopes
    between every pair of samples, so a garbage collection or one odd sample does not move it), unless
    what the slope adds up to over the run is within the process's own spread around it or under 10 MB:
    a few minutes of a process whose resident memory saws by +-7 MB (the broker) can draw a slope of
    1-3 MB/min from noise alone; nor unless it was a step of at most 20 MB that then stopped: over the
    second half of the measured time it rose no more than its noise or 2.5 MB. A Python process's resident
    memory steps up to the largest batch it has held and stays there (a high-water mark); a leak goes on;
  * throughput: records/s out in the last window must be at least 90 % of the first window.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

Series = list[tuple[float, float]]

FULL_WARMUP_S = 300.0          # 5 minutes, for runs of 25 minutes and more
WARMUP_SHARE = 0.2             # shorter runs: the first fifth
FULL_THROUGHPUT_WINDOW_S = 300.0
MEMORY_LIMIT_MB_PER_MIN = 1.0
# A rise smaller than this over the measured time is not told apart from noise that drifts for a minute
# or two (the broker's native memory) or a one-off step (an allocator arena): on synthetic series like
# the broker's, 5 MB let 1 in 5 flat five-minute runs fail, 10 MB 1 in 15. It leaves hour-long runs to the
# slope (1 MB/min is 25 MB over a 30-minute run's measured time).
MEMORY_MIN_RISE_MB = 10.0
# Growth over the run that rose no more than this (or its noise) over the second half has stopped: a step
# to a high-water mark. A quarter of the minimum rise, with no slope allowance: the archiver's old first-
# 20-minute ramp (+1.0 MB/min, +3.9 MB over a 10-minute run's last 4 minutes) is still growth.
MEMORY_LEVEL_MB = 2.5
# ... and only a step of at most this much: a run too short to see whether growth resumes forgives a high-
# water mark of a batch or two, not a process that put on 50-100 MB (MiniStack under a cold start's backlog,
# 193 -> 310 MB in 8 minutes, levelled off in the last 4 and still fails).
MEMORY_MAX_STEP_MB = 2 * MEMORY_MIN_RISE_MB
THROUGHPUT_MIN_RATIO = 0.9
# The lag "keeps growing" only when its rise over the second half is more than this much input
# (a backlog that appears and clears within a few seconds is batching, not falling behind).
LAG_TOLERANCE_INPUT_S = 10.0
_MAX_POINTS = 400              # Theil-Sen is O(n^2): longer series are thinned evenly first


def warmup_s(duration_s: float) -> float:
    """5 minutes, or the first fifth of a run shorter than 25 minutes (1 minute of a 5-minute run)."""
    return min(FULL_WARMUP_S, WARMUP_SHARE * duration_s)


def throughput_window_s(measured_s: float) -> float:
    """5 minutes, or a third of the measured time when that is shorter (first and last never overlap)."""
    return min(FULL_THROUGHPUT_WINDOW_S, measured_s / 3)


def after(series: Series, t0: float) -> Series:
    return [(t, v) for t, v in series if t >= t0]


def _thin(series: Series) -> Series:
    if len(series) <= _MAX_POINTS:
        return series
    step = (len(series) - 1) / (_MAX_POINTS - 1)
    return [series[round(i * step)] for i in range(_MAX_POINTS)]


def theil_sen_slope(series: Series) -> float:
    """Median of the pairwise slopes (value per second); 0 with fewer than two distinct times."""
    points = _thin(sorted(series))
    slopes = [(v2 - v1) / (t2 - t1)
              for i, (t1, v1) in enumerate(points) for t2, v2 in points[i + 1:] if t2 > t1]
    return statistics.median(slopes) if slopes else 0.0


def interquartile_range(values: list[float]) -> float:
    if len(values) < 4:
        return (max(values) - min(values)) if values else 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def residual_spread(series: Series, slope: float) -> float:
    """How far the samples scatter around a line of this slope: the interquartile range of the residuals
    (value - slope x time; the intercept cancels out). A step or a few odd samples at either end do not
    widen it, so growth after a step is still seen as growth."""
    return interquartile_range([v - slope * t for t, v in series])


def rate_between(counter: Series, t0: float, t1: float) -> float | None:
    """Per-second rate of a cumulative counter between the samples nearest inside [t0, t1]."""
    inside = [(t, v) for t, v in counter if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (a_t, a_v), (b_t, b_v) = inside[0], inside[-1]
    return (b_v - a_v) / (b_t - a_t)


def step_rate_between(counter: Series, t0: float, t1: float) -> float | None:
    """rate_between, measured from the first to the last sample inside [t0, t1] at which the counter moved.

    A consumer that commits every half minute or minute (the archiver) moves its committed offsets in steps
    between the 10-s samples: between plain window edges that fall at different phases of its commits, the
    same steady rate reads 20 % higher or lower. Between two steps it reads the records of whole commits over
    their time. A counter that moves at every sample gives rate_between's answer."""
    moved = [(t, v) for (_, before), (t, v) in zip(counter, counter[1:]) if t0 <= t <= t1 and v != before]
    rate = rate_between(moved, t0, t1)
    return rate if rate is not None else rate_between(counter, t0, t1)


@dataclass(frozen=True)
class Gate:
    name: str          # e.g. "lag flight-trigger", "memory MiniStack"
    ok: bool
    measured: str      # what was measured, in words and units
    limit: str         # what passing means
    detail: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "measured": self.measured, "limit": self.limit,
                "detail": self.detail}


def lag_gate(group: str, lag: Series, in_rate: float, measured_from: float, end: float) -> Gate:
    """Fails when the lag rises over the second half of [measured_from, end] by more than its own
    spread (interquartile range) there and more than LAG_TOLERANCE_INPUT_S seconds of input."""
    half = after(lag, measured_from + (end - measured_from) / 2)
    limit = f"rise over the second half <= max(its spread, {LAG_TOLERANCE_INPUT_S:g} s of input)"
    if len(half) < 3:
        return Gate(f"lag {group}", False, f"{len(half)} samples in the second half", limit,
                    "too few samples to judge: run longer")
    slope = theil_sen_slope(half)
    span = half[-1][0] - half[0][0]
    rise = slope * span
    spread = interquartile_range([v for _, v in half])
    tolerance = max(spread, LAG_TOLERANCE_INPUT_S * in_rate)
    ok = rise <= tolerance
    name = group if group.startswith("queue ") else f"lag {group}"
    return Gate(name, ok,
                f"{slope * 60:+,.0f} records/min (rise {rise:,.0f} over {span / 60:.1f} min; "
                f"median lag {statistics.median(v for _, v in half):,.0f})",
                limit, "" if ok else f"falling behind: the lag rose {rise:,.0f} records, more than the tolerated "
                                     f"{tolerance:,.0f}")


def _line(points: Series) -> tuple[float, float, float]:
    """(slope MB/min, rise MB, noise MB) of sorted samples: the Theil-Sen slope, what it adds up to over their
    time, and their spread around it."""
    slope_s = theil_sen_slope(points)
    return slope_s * 60, slope_s * (points[-1][0] - points[0][0]), residual_spread(points, slope_s)


def memory_gate(process: str, rss_mb: Series, measured_from: float) -> Gate:
    """Fails when the memory grows faster than MEMORY_LIMIT_MB_PER_MIN and that growth is real: its rise
    over the measured time (slope x time) exceeds both the samples' own noise around the line and
    MEMORY_MIN_RISE_MB. On an hour-long run the slope decides; on a few minutes, only a rise the noise
    cannot explain fails. Growth that stopped passes, said so: over the second half of the measured time
    the rise is within its noise or MEMORY_LEVEL_MB (a step to a high-water mark, then level), and the whole
    rise is at most MEMORY_MAX_STEP_MB."""
    points = after(rss_mb, measured_from)
    limit = (f"<= {MEMORY_LIMIT_MB_PER_MIN:g} MB/min, or a rise within its noise (interquartile range around the "
             f"line) or under {MEMORY_MIN_RISE_MB:g} MB, or a step of at most {MEMORY_MAX_STEP_MB:g} MB, level over "
             f"the second half")
    name = f"memory {process}"
    if len(points) < 3:
        return Gate(name, False, f"{len(points)} samples after warm-up", limit, "too few samples to judge")
    points = sorted(points)
    slope, rise, noise = _line(points)
    span = points[-1][0] - points[0][0]
    measured = (f"{slope:+.2f} MB/min ({points[0][1]:,.0f} -> {points[-1][1]:,.0f} MB; rise {rise:+.1f} MB over "
                f"{span / 60:.1f} min, noise {noise:.1f} MB)")
    if slope <= MEMORY_LIMIT_MB_PER_MIN or rise <= max(noise, MEMORY_MIN_RISE_MB):
        return Gate(name, True, measured, limit)
    half = after(points, points[0][0] + span / 2)
    if rise <= MEMORY_MAX_STEP_MB and len(half) >= 3:
        half_slope, half_rise, half_noise = _line(half)
        if half_rise <= max(half_noise, MEMORY_LEVEL_MB):
            held = half[-1][0] - half[0][0]
            return Gate(name, True, f"{measured}; then level: {half_slope:+.2f} MB/min, {half_rise:+.1f} MB over the "
                                    f"last {held / 60:.1f} min", limit)
    why = (f"more than a {MEMORY_MAX_STEP_MB:g}-MB step" if rise > MEMORY_MAX_STEP_MB
           else "and still growing over the second half")
    return Gate(name, False, measured, limit,
                f"{process} grows {slope:.2f} MB/min: {rise:.1f} MB over {span / 60:.1f} min, beyond its noise "
                f"({noise:.1f} MB) and {MEMORY_MIN_RISE_MB:g} MB, {why}")


def throughput_gate(group: str, committed: Series, measured_from: float, end: float,
                    in_rate: float | None = None) -> Gate:
    """The last window's rate against the first's. A consumer still draining its cold start's backlog in the
    first window goes faster than the input there; it is held to the input rate (``in_rate``), all it can
    keep once caught up: 1,160 -> 1,023 records/s with 1,000/s in is not a fall."""
    window = throughput_window_s(end - measured_from)
    first = step_rate_between(committed, measured_from, measured_from + window)
    last = step_rate_between(committed, end - window, end)
    limit = f"last {window / 60:.1f} min >= {THROUGHPUT_MIN_RATIO:.0%} of the first {window / 60:.1f} min"
    if first is None or last is None:
        return Gate(f"throughput {group}", False, "not enough samples", limit, "too few samples to judge")
    if first <= 0:
        return Gate(f"throughput {group}", False, f"{first:,.0f} -> {last:,.0f} records/s", limit,
                    "nothing was handled in the first window")
    base = min(first, in_rate) if in_rate else first
    ratio = last / base
    ok = ratio >= THROUGHPUT_MIN_RATIO
    held = f", the first held to the input's {in_rate:,.0f}/s" if base < first else ""
    return Gate(f"throughput {group}", ok, f"{first:,.0f} -> {last:,.0f} records/s ({ratio:.0%}{held})", limit,
                "" if ok else f"throughput fell to {ratio:.0%} of the first window")
