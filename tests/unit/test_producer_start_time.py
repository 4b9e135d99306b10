"""--start-time with Kafka output: the synthetic fleet runs on simulated time paced by the wall clock.

Before, such a run planned every aircraft's legs from the start time up to the real now before its
first tick (181 s for 1,000 aircraft from 2021-10-07) and then stamped its ticks with today's time.
"""
from __future__ import annotations

import threading
import time

import pytest

from pipeline_common.settings import ConfigError
from producer.runner import PacedClock, RealClock, SimulatedClock, default_clock, run_producer
from producer.settings import ProducerConfig
from sinks import ListSink

DAY = 1_633_564_800.0  # 2021-10-07 00:00:00 UTC


class FakeWall:
    """A monotonic clock and a stop event whose waits move it instead of sleeping."""

    def __init__(self):
        self.t = 100.0
        self.waits: list[float] = []
        self._set = False

    def __call__(self) -> float:
        return self.t

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.t += seconds
        return self._set

    def is_set(self) -> bool:
        return self._set


def test_a_live_run_of_a_past_day_ticks_at_the_interval_stamped_from_the_start_time():
    # GIVEN 300 synthetic aircraft asked to start on 2021-10-07, output to a sink (not a file)
    cfg = ProducerConfig(source="synthetic", aircraft=300, seed=4, start_time=DAY, interval_s=0.25, max_ticks=4)
    sink = ListSink()
    # WHEN the producer runs with the clock it picks itself
    started = time.monotonic()
    stats = run_producer(cfg, sink=sink)
    took = time.monotonic() - started
    # THEN tick n is stamped exactly start + n x interval, on 2021-10-07, one message per aircraft per tick
    assert stats.ticks == 4 and stats.published == 1200
    assert sorted({m["fetched_at"] for m in sink.values}) == [DAY, DAY + 0.25, DAY + 0.5, DAY + 0.75]
    assert {m["time_position"] for m in sink.values} == {int(DAY)}  # four ticks within the same second
    # ... the ticks came at the interval on the wall clock (3 waits of 0.25 s), not after planning
    # 5 years of legs (about 45 s for 100 aircraft on this machine before) and not all at once
    assert 0.7 <= took < 10.0


def test_the_live_run_publishes_exactly_what_an_export_of_the_same_flags_writes(tmp_path):
    flags = dict(source="synthetic", aircraft=200, seed=9, start_time=DAY + 86_390, interval_s=0.1, max_ticks=3)
    live = ListSink()
    run_producer(ProducerConfig(**flags), sink=live)
    exported = ListSink()
    run_producer(ProducerConfig(**flags, export_csv=str(tmp_path / "unused.csv")), sink=exported)
    assert live.messages == exported.messages and len(live.messages) == 600


def test_a_run_on_simulated_time_crosses_utc_midnight_like_any_other_second():
    # GIVEN a start 10 s before 2021-10-08 00:00 UTC and ticks 5 s apart
    cfg = ProducerConfig(source="synthetic", aircraft=50, seed=2, start_time=DAY + 86_390, interval_s=5, max_ticks=4)
    sink = ListSink()
    run_producer(cfg, sink=sink, clock=SimulatedClock(DAY + 86_390))
    days = sorted({int(m["time_position"] // 86_400) for m in sink.values})
    # THEN two ticks fall on 2021-10-07 and two on 2021-10-08
    assert [int(DAY // 86_400), int(DAY // 86_400) + 1] == days
    assert sorted({m["time_position"] for m in sink.values}) == [int(DAY) + 86_390 + 5 * n for n in range(4)]


def test_paced_time_moves_by_the_waits_and_the_wall_wait_subtracts_the_tick_s_own_time():
    wall = FakeWall()
    clock = PacedClock(DAY, wall=wall)
    wall.t += 0.3                                 # the first tick took 0.3 s
    assert clock.wait(1.0, wall) is False
    assert clock.now() == DAY + 1.0 and wall.waits == [0.7]
    wall.t += 0.1                                 # the second took 0.1 s
    clock.wait(1.0, wall)
    assert clock.now() == DAY + 2.0 and wall.waits == [0.7, 0.9]


def test_a_paced_run_that_fell_behind_goes_on_at_once_without_bursting_to_catch_up():
    wall = FakeWall()
    clock = PacedClock(DAY, wall=wall)
    wall.t += 3.5                                 # one tick took 3.5 intervals (a stalled broker)
    clock.wait(1.0, wall)
    assert wall.waits == []                       # late: no wait at all
    wall.t += 0.2
    clock.wait(1.0, wall)                         # the next interval counts from when it went on
    assert wall.waits == [0.8] and clock.now() == DAY + 2.0


def test_a_stop_request_ends_a_paced_wait():
    stop = threading.Event()
    clock = PacedClock(DAY)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert clock.wait(30.0, stop) is True
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(("flags", "kind"), [
    (dict(source="synthetic", start_time=DAY), PacedClock),
    (dict(source="replay", replay="x.csv", start_time=DAY), PacedClock),
    (dict(source="synthetic", start_time=DAY, export_csv="x.csv", max_ticks=1), SimulatedClock),
    (dict(source="synthetic", export_csv="x.csv", max_ticks=1), SimulatedClock),
    (dict(source="synthetic"), RealClock),
    (dict(source="opensky"), RealClock),
])
def test_the_clock_follows_the_start_time_and_the_output(flags, kind):
    clock = default_clock(ProducerConfig(**flags))
    assert type(clock) is kind
    if "start_time" in flags:
        assert clock.now() == DAY


def test_a_start_time_of_epoch_zero_is_a_start_time_not_now():
    assert default_clock(ProducerConfig(source="synthetic", start_time=0.0)).now() == 0.0


def test_opensky_refuses_a_start_time_naming_the_variable():
    with pytest.raises(ConfigError, match="PRODUCER_START_TIME .* OpenSky"):
        ProducerConfig(source="opensky", start_time=DAY)
