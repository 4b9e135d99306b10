"""tracker.live.LivePicture: latest state per aircraft, staleness, bounded memory, the change feed."""
import json
from datetime import datetime, timedelta, timezone

from saved_events import load_event
from tracker.live import LivePicture, MIN_FEED_LENGTH
from tracker.records import decode

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def pos(icao24: str, seconds: int = 0, lat: float = 50.0):
    state = load_event("raw_state.json")
    state.update(icao24=icao24, time_position=(T0 + timedelta(seconds=seconds)).timestamp(), latitude=lat)
    return decode(json.dumps(state).encode(), 0, seconds)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_picture_keeps_the_newest_position_and_ignores_a_redelivered_older_one():
    live = LivePicture()
    live.update([pos("aaaaaa", 10, lat=51.0)])
    live.update([pos("aaaaaa", 5, lat=49.0)])  # redelivered, older
    assert live.get("aaaaaa").latitude == 51.0 and len(live) == 1


def test_an_aircraft_not_heard_for_stale_after_s_drops_off_and_the_feed_reports_it_removed():
    clock = Clock()
    live = LivePicture(stale_after_s=60, clock=clock)
    live.update([pos("aaaaaa"), pos("bbbbbb")])
    seq = live.seq
    clock.now += 30
    live.update([pos("bbbbbb", 30)])
    clock.now += 45  # aaaaaa last heard 75 s ago, bbbbbb 45 s ago
    assert live.expire() == 1
    changes = live.changes_since(seq)
    assert [p.icao24 for p in changes.changed] == ["bbbbbb"] and changes.removed == ["aaaaaa"]


def test_the_picture_never_holds_more_than_max_aircraft():
    live = LivePicture(max_aircraft=100)
    live.update([pos(f"{n:06x}") for n in range(250)])
    assert len(live) == 100
    assert live.get(f"{249:06x}") is not None and live.get(f"{0:06x}") is None


def test_a_reader_behind_the_bounded_feed_is_told_to_take_a_snapshot():
    live = LivePicture(max_aircraft=10, feed_length=20)
    live.update([pos("aaaaaa")])
    seq = live.seq
    for n in range(30):
        live.update([pos("bbbbbb", n + 1)])
    assert live.changes_since(seq) is None
    assert live.changes_since(live.seq - 5).changed[0].icao24 == "bbbbbb"
    assert len(live._feed) == 20


def test_no_change_means_an_empty_update():
    live = LivePicture()
    live.update([pos("aaaaaa")])
    changes = live.changes_since(live.seq)
    assert changes.changed == [] and changes.removed == []


def test_listeners_hear_of_each_change_and_a_failing_one_stops_nothing():
    clock = Clock()
    live = LivePicture(stale_after_s=60, clock=clock)
    heard = []
    live.subscribe(lambda: heard.append(live.seq))
    live.subscribe(lambda: 1 / 0)  # a reader whose connection is closing
    live.update([pos("aaaaaa", 10)])
    live.update([pos("aaaaaa", 5)])   # older: no change, nobody told
    clock.now += 61
    assert live.expire() == 1
    assert heard == [1, 2] and len(live) == 0


def test_the_feed_follows_the_picture_twice_its_aircraft_and_a_reader_behind_it_takes_a_snapshot():
    # GIVEN a picture of 6,000 aircraft, each heard three times (18,000 changes)
    live = LivePicture()
    for t in range(3):
        live.update([pos(f"{n:06x}", t + 1) for n in range(6000)])
    # THEN the feed keeps twice as many changes as aircraft, not a fixed multiple of max_aircraft
    assert len(live._feed) == 12_000
    # AND a reader from before it is told to take a snapshot; one within it gets every aircraft it missed
    assert live.changes_since(0) is None
    assert len(live.changes_since(live.seq - 12_000).changed) == 6000
    # AND a small picture keeps the minimum
    small = LivePicture()
    for t in range(30):
        small.update([pos(f"{n:06x}", t + 1) for n in range(500)])
    assert len(small._feed) == MIN_FEED_LENGTH
