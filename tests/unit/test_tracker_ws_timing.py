"""When /ws/flights pushes, as PushTiming decides it, on made-up clock values (no event loop, no sleeps)."""
from __future__ import annotations

import pytest

from tracker.api.routes.live import EXTEND_S, GATHER_MAX_S, GATHER_MIN_S, QUIET_S, PushTiming

INTERVAL = 1.0


def timing(pushed_at: float = 100.0) -> PushTiming:
    return PushTiming(INTERVAL, pushed_at)


def test_a_burst_after_a_quiet_interval_goes_out_when_it_is_over():
    # GIVEN the last push at t=100 and a burst starting at t=103 (long after the interval)
    t = timing()
    t.changed(103.0)
    t.start_waiting(103.0)
    # WHEN the burst goes on for 0.1 s THEN the push waits for its first GATHER_MIN_S, then for QUIET_S of calm
    assert t.wait_s(103.0) == pytest.approx(GATHER_MIN_S)
    t.changed(103.14)  # still going when GATHER_MIN_S ends: wait until QUIET_S after its last change
    assert t.wait_s(103.0 + GATHER_MIN_S) == pytest.approx(103.14 + QUIET_S - 103.0 - GATHER_MIN_S)
    # AND it goes out as soon as the burst has been quiet for QUIET_S
    assert t.wait_s(103.14 + QUIET_S) <= 0


def test_an_endless_burst_is_pushed_by_gather_max_at_the_latest():
    t = timing()
    t.start_waiting(103.0)
    for step in range(100):  # a change every 10 ms, never quiet
        now = 103.0 + step * 0.01
        t.changed(now)
        if t.wait_s(now) <= 0:
            break
    assert now == pytest.approx(103.0 + GATHER_MAX_S, abs=0.011)


def test_one_push_per_interval_a_burst_in_the_interval_waits_for_its_end():
    # GIVEN a push at t=100 and a change at 100.3 (inside the interval)
    t = timing()
    t.changed(100.3)
    t.start_waiting(100.3)
    # THEN nothing goes out before the interval has passed
    assert t.wait_s(100.9) == pytest.approx(0.1)
    # AND a burst still going at the interval's end extends it by at most EXTEND_S
    t.changed(101.05)
    assert t.wait_s(101.05) == pytest.approx(QUIET_S)
    t.changed(101.3)
    assert t.wait_s(101.3) == pytest.approx(INTERVAL + EXTEND_S - 1.3)


def test_a_steady_stream_is_pushed_exactly_at_the_interval():
    # GIVEN changes right through the previous push (the first seen within QUIET_S of it)
    t = timing()
    t.changed(100.01)
    t.start_waiting(100.01)
    t.changed(100.99)
    # THEN the push is due when the interval ends, however busy the stream
    assert t.wait_s(100.5) == pytest.approx(0.5)
    assert t.wait_s(101.0) <= 0


def test_a_push_moves_the_next_interval():
    t = timing()
    t.pushed(105.0)
    t.start_waiting(105.2)
    assert t.earliest == pytest.approx(106.0)
