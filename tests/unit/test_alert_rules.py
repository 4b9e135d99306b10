"""The alert state machine: enter/exit from the previous state, emergencies on a squawk change,
the watchlist once per appearance, and positions redelivered or out of order changing nothing."""
from __future__ import annotations

import pytest

from flight_domain.alert_rules import (EMERGENCY, GEOFENCE_ENTER, GEOFENCE_EXIT, WATCHLIST, AircraftState, Watchlist,
                         WatchlistError, fold, must_store, observe, read_squawk, refresh_after_s, step)
from flight_domain.geofence import parse_fences

FENCES = parse_fences({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Box", "ceiling_ft": 20000},
     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}},
]})
NOBODY = Watchlist()


def state(lon, lat, t, *, squawk="1000", icao24="abc123", callsign="TEST1", altitude_m=3000.0, on_ground=False):
    return {"icao24": icao24, "callsign": callsign, "origin_country": "Germany", "time_position": t,
            "last_contact": t, "longitude": lon, "latitude": lat, "baro_altitude": altitude_m,
            "geo_altitude": None, "on_ground": on_ground, "velocity": 200.0, "squawk": squawk}


def obs(*args, **kwargs):
    observation, reason = observe(state(*args, **kwargs))
    assert observation is not None, reason
    return observation


def kinds(alerts):
    return [(a.alert_type, a.geofence or a.squawk or a.watch) for a in alerts]


def run(track, watchlist=NOBODY, initial=None):
    final, alerts, ignored = fold(initial, track, FENCES, watchlist, 1800)
    return final, kinds(alerts), ignored


def test_a_track_through_a_fence_enters_once_and_exits_once():
    track = [obs(-1, 1, 100), obs(0.5, 1, 110), obs(1, 1, 120), obs(1.5, 1, 130), obs(3, 1, 140), obs(4, 1, 150)]
    final, alerts, _ = run(track)
    assert alerts == [(GEOFENCE_ENTER, "Box"), (GEOFENCE_EXIT, "Box")]
    assert final.t == 150 and final.inside == frozenset()


def test_first_seen_inside_a_fence_is_an_enter():
    _, alerts, _ = run([obs(1, 1, 100)])
    assert alerts == [(GEOFENCE_ENTER, "Box")]


def test_climbing_through_the_ceiling_is_an_exit():
    _, alerts, _ = run([obs(1, 1, 100, altitude_m=3000), obs(1, 1, 110, altitude_m=7000)])
    assert alerts == [(GEOFENCE_ENTER, "Box"), (GEOFENCE_EXIT, "Box")]


def test_a_redelivered_batch_raises_nothing_again():
    # GIVEN a track already applied
    track = [obs(-1, 1, 100), obs(1, 1, 110), obs(3, 1, 120)]
    after, first, _ = run(track)
    # WHEN the same records arrive again (at-least-once delivery)
    final, again, ignored = run(track, initial=after)
    # THEN nothing is raised and nothing changes
    assert first == [(GEOFENCE_ENTER, "Box"), (GEOFENCE_EXIT, "Box")]
    assert again == [] and ignored == 3 and final is None


def test_an_out_of_order_position_cannot_make_an_aircraft_enter_twice():
    # GIVEN an aircraft that entered at t=110 and left at t=130
    track = [obs(-1, 1, 100), obs(1, 1, 110), obs(3, 1, 130)]
    after, _, _ = run(track)
    # WHEN an older position, inside the fence, arrives late
    final, alerts, ignored = run([obs(1, 1, 120)], initial=after)
    # THEN it is ignored: no second ENTER, the aircraft stays outside
    assert alerts == [] and ignored == 1 and final is None
    # and the next new position is judged against t=130 (outside)
    final, alerts, _ = run([obs(4, 1, 140)], initial=after)
    assert alerts == [] and final.inside == frozenset()


def test_a_position_with_the_same_time_is_not_newer():
    after, _, _ = run([obs(1, 1, 100)])
    assert step(after, obs(3, 1, 100), FENCES, NOBODY, 1800) == (None, [])


def test_emergency_once_when_the_squawk_changes_and_again_only_after_it_changed_back():
    track = [obs(5, 5, 100, squawk="2200"), obs(5, 5, 110, squawk="7700"), obs(5, 5, 120, squawk="7700"),
             obs(5, 5, 125, squawk=None), obs(5, 5, 130, squawk="7700"), obs(5, 5, 140, squawk="2200"),
             obs(5, 5, 150, squawk="7600")]
    _, alerts, _ = run(track)
    assert alerts == [(EMERGENCY, "7700"), (EMERGENCY, "7600")]


def test_the_emergency_body_says_which_emergency():
    _, alerts, _ = fold(None, [obs(5, 5, 100, squawk="7500")], FENCES, NOBODY, 1800)
    body = alerts[0].body()
    assert body["emergency"] == "hijack" and body["squawk"] == "7500" and body["alert_type"] == EMERGENCY
    assert {"icao24", "callsign", "origin_country", "time_position", "longitude", "latitude",
            "altitude_feet", "velocity_knots"} <= set(body)
    assert alerts[0].attributes()["squawk"] == {"DataType": "String", "StringValue": "7500"}
    assert "geofence" not in alerts[0].attributes()


def test_watchlist_once_per_appearance():
    watch = Watchlist.parse("callsign=DLH4*, icao24=3C6444")
    track = [obs(5, 5, t, callsign="DLH400", icao24="aaaaaa") for t in (100, 110, 120)]
    # back after more than the 1800 s gap: a new appearance
    track += [obs(5, 5, 2000, callsign="DLH400", icao24="aaaaaa"), obs(5, 5, 2010, callsign="DLH400", icao24="aaaaaa")]
    _, alerts, _ = run(track, watch)
    assert alerts == [(WATCHLIST, "callsign=DLH4*"), (WATCHLIST, "callsign=DLH4*")]
    _, alerts, _ = run([obs(5, 5, 100, icao24="3c6444", callsign="XYZ")], watch)
    assert alerts == [(WATCHLIST, "icao24=3c6444")]


@pytest.mark.parametrize("text", ["abc", "icao24=xyz", "callsign=", "tail=N123"])
def test_a_bad_watchlist_entry_is_refused_by_name(text):
    with pytest.raises(WatchlistError, match="is not icao24="):
        Watchlist.parse(text)


def test_states_without_position_or_on_the_ground_raise_nothing():
    no_position = state(None, None, 100)
    assert observe(no_position) == (None, "no position")
    assert observe(state(1, 1, 100, on_ground=True))[0] is None
    assert read_squawk(None) is None and read_squawk("7800") is None and read_squawk(" 7700 ") == "7700"


def test_a_removed_fence_raises_no_exit():
    after, _, _ = run([obs(1, 1, 100)])
    final, alerts, _ = fold(after, [obs(1, 1, 110)], (), NOBODY, 1800)
    assert alerts == [] and final.inside == frozenset()


def test_alert_ids_are_deterministic_and_fifo_dedup_ids_fit():
    a = fold(None, [obs(1, 1, 100)], FENCES, NOBODY, 1800)[1][0]
    b = fold(AircraftState(), [obs(1, 1, 100)], FENCES, NOBODY, 1800)[1][0]
    assert a.alert_id == b.alert_id == "abc123:100:GEOFENCE_ENTER:Box"
    assert len(a.dedup_id) <= 128


def test_only_a_change_an_alert_a_watched_aircraft_or_a_due_refresh_must_be_stored():
    # GIVEN an aircraft inside Box squawking 1000, stored at t=100
    stored, _, _ = run([obs(1, 1, 100)])

    def judged(*track, watch=NOBODY):
        final, alerts, _ = fold(stored, list(track), FENCES, watch, 1800)
        return must_store(stored, final, alerts, 300)

    # THEN the next positions that change nothing are not written, until 300 s of position time passed
    assert not judged(obs(1.5, 1, 110))
    assert not judged(obs(1.5, 1, 399), obs(1.2, 1.2, 399))  # the second: not newer, ignored
    assert judged(obs(1.5, 1, 400))                                   # refresh due: exactly 300 s
    # AND every change is written: leaving the fence, a new squawk (not only emergencies), a watchlist hit
    assert judged(obs(3, 1, 110))
    assert judged(obs(1.5, 1, 110, squawk="2200"))
    assert judged(obs(1.5, 1, 110, callsign="DLH400"), watch=Watchlist.parse("callsign=DLH*"))
    # AND a position without a squawk keeps the stored one: nothing changed
    assert not judged(obs(1.5, 1, 110, squawk=None))
    # AND a first-seen aircraft is always written, as is a fence removed since (its name leaves the state)
    final, alerts, _ = fold(None, [obs(5, 5, 100)], FENCES, NOBODY, 1800)
    assert must_store(None, final, alerts, 300)
    final, alerts, _ = fold(stored, [obs(1, 1, 110)], (), NOBODY, 1800)
    assert alerts == [] and must_store(stored, final, alerts, 300)


def test_a_watched_aircraft_is_stored_at_every_position_and_refresh_zero_stores_all():
    watch = Watchlist.parse("callsign=DLH*")
    stored, alerts, _ = run([obs(5, 5, 100, callsign="DLH400")], watch)
    assert alerts == [(WATCHLIST, "callsign=DLH*")] and stored.watched
    final, alerts, _ = fold(stored, [obs(5, 5, 110, callsign="DLH400")], FENCES, watch, 1800)
    # the appearance gap is measured from its exact last position: so that one is stored
    assert alerts == [] and must_store(stored, final, alerts, 300)
    quiet, _, _ = run([obs(5, 5, 100)])
    final, alerts, _ = fold(quiet, [obs(5, 5, 101)], FENCES, NOBODY, 1800)
    assert must_store(quiet, final, alerts, 0) and not must_store(quiet, final, alerts, 300)


def test_refreshes_of_aircraft_first_written_together_are_spread_over_half_the_interval():
    # GIVEN 10,000 aircraft, each one's interval from its icao24
    intervals = [refresh_after_s(f"{n:06x}", 300) for n in range(10_000)]
    # THEN none is longer than the setting (the TTL bound holds) nor shorter than half of it
    assert min(intervals) >= 150 and max(intervals) <= 300
    # AND they are spread: no 10 s of the window holds much more than its share (10,000 / 15 = 667)
    per_10s = [sum(1 for i in intervals if lo <= i < lo + 10) for lo in range(150, 300, 10)]
    assert max(per_10s) < 800 and min(per_10s) > 500
    # AND fixed per aircraft (every container judges an aircraft alike); 0 and 1 are kept as they are
    assert refresh_after_s("3c6444", 300) == refresh_after_s("3c6444", 300)
    assert refresh_after_s("3c6444", 0) == 0 and refresh_after_s("3c6444", 1) == 1
