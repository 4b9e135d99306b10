"""The producer's change filter forgets aircraft unheard for an hour once it holds 50,000, judged by
OpenSky's snapshot time (the clock of the data), not by when the producer runs."""
from __future__ import annotations

from producer.opensky import StatesSnapshot
from producer.sources import ChangeFilter

T = 1_633_564_800  # 2021-10-07 00:00 UTC: a replayed day, long before this test runs


def states(icao24s, last_contact):
    return [{"icao24": code, "last_contact": last_contact} for code in icao24s]


def test_aircraft_unheard_for_longer_than_the_horizon_are_forgotten_once_the_filter_is_full():
    changes = ChangeFilter(forget_after_s=3600)
    old = [f"{n:06x}" for n in range(50_000)]
    # GIVEN 50,000 aircraft last heard 3,601 s before the snapshot, one exactly 3,600 s before, one now
    snapshot = StatesSnapshot(T, states(old, T - 3601) + states(["edge00"], T - 3600) + states(["fresh0"], T))
    published, _ = changes.fresh(snapshot)
    assert len(published) == 50_002
    # THEN only those past the horizon are forgotten: the one exactly on it and the fresh one are kept
    assert len(changes) == 2
    # ... so the next snapshot still skips the kept ones as unchanged, and an old one that moves is news
    published, unchanged = changes.fresh(StatesSnapshot(T + 10, states(["edge00"], T - 3600)
                                                        + states(["fresh0"], T) + states([old[0]], T + 5)))
    assert [s["icao24"] for s in published] == [old[0]] and unchanged == 2


def test_below_50000_aircraft_nothing_is_forgotten_however_old():
    changes = ChangeFilter(forget_after_s=3600)
    changes.fresh(StatesSnapshot(T, states([f"{n:06x}" for n in range(1000)], T - 86_400)))
    assert len(changes) == 1000


def test_a_snapshot_not_newer_than_the_last_one_is_a_duplicate():
    changes = ChangeFilter()
    changes.fresh(StatesSnapshot(T, []))
    assert changes.is_duplicate(T) and changes.is_duplicate(T - 5) and not changes.is_duplicate(T + 5)
