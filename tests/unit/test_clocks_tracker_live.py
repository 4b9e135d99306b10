"""The tracker's stale-aircraft drop (TRACKER_STALE_AFTER_S) at its boundary, on a clock the test moves:
an aircraft heard exactly stale_after_s ago stays, a moment later it goes; a replayed past day is
judged by when it was heard, not by its position times."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from saved_events import load_event
from tracker.live import LivePicture
from tracker.records import decode

DAY = datetime(2021, 10, 7, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def pos(icao24: str, at: float):
    state = load_event("raw_state.json")
    state.update(icao24=icao24, time_position=at, last_contact=at)
    return decode(json.dumps(state).encode(), 0, 0)


def test_an_aircraft_heard_exactly_stale_after_s_ago_stays_and_goes_just_after():
    clock = Clock(1_800_000_000.0)
    live = LivePicture(stale_after_s=5, clock=clock)
    live.update([pos("aaaaaa", clock.now)])
    clock.now += 5.0
    assert live.expire() == 0 and len(live) == 1
    clock.now += 0.001
    assert live.expire() == 1 and len(live) == 0


def test_positions_of_a_past_day_stay_visible_while_they_keep_coming():
    # GIVEN positions of 2021-10-07 arriving now, every 2 s, with a 5 s staleness
    clock = Clock(1_800_000_000.0)
    live = LivePicture(stale_after_s=5, clock=clock)
    for n in range(6):
        live.update([pos("bbbbbb", DAY + 10 * n)])
        clock.now += 2
        # THEN the aircraft stays: it is judged by when it was heard, not by a position time years old
        assert live.expire() == 0 and len(live) == 1
    # ... and goes once nothing is heard of it for longer than 5 s
    clock.now += 4
    assert live.expire() == 1
