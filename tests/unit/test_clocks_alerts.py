"""The alert rules' time boundaries: WATCH_GAP_S (a new appearance) at its edge, also when only the
states that must be stored are (ALERT_STATE_REFRESH_S), the alert state's TTL (ALERT_STATE_TTL_S)
counted so that a replayed past day's state is not born expired, and never shorter than the gap it
has to remember nor than twice the refresh that renews it."""
from __future__ import annotations

import pytest

from alert_settings import AlertSettings
from alert_state import StateStore, to_item
from flight_domain.alert_rules import AircraftState, Watchlist, fold, must_store, observe
from pipeline_common.settings import ConfigError

WATCH = Watchlist.parse("callsign=DLH4*")
DAY = 1_633_564_800  # 2021-10-07 00:00 UTC
NOW = 1_800_000_000.0
TTL = 86_400


def seen(t: int):
    state = {"icao24": "3c6444", "callsign": "DLH400", "origin_country": "Germany", "time_position": t,
             "last_contact": t, "longitude": 8.5, "latitude": 50.0, "baro_altitude": 10000.0, "geo_altitude": None,
             "on_ground": False, "velocity": 230.0, "squawk": "1000"}
    observation, reason = observe(state)
    assert observation is not None, reason
    return observation


def watch_alerts(times, gap_s):
    _state, alerts, _ignored = fold(None, [seen(t) for t in times], (), WATCH, gap_s)
    return [a.t for a in alerts if a.alert_type == "WATCHLIST"]


def test_unseen_for_exactly_the_gap_is_the_same_appearance_a_second_more_is_a_new_one():
    # position times 1 800 s apart continue the appearance; 1 801 s apart begin a new one
    assert watch_alerts([DAY, DAY + 1800, DAY + 3600], 1800) == [DAY]
    assert watch_alerts([DAY, DAY + 1800, DAY + 3601], 1800) == [DAY, DAY + 3601]


def test_the_gap_is_the_setting_not_a_constant():
    # WATCH_GAP_S's minimum, 60 s: a position every 60 s is one appearance, a 61 s pause a new one
    assert watch_alerts([DAY + 60 * n for n in range(10)], 60) == [DAY]
    assert watch_alerts([DAY, DAY + 60, DAY + 121, DAY + 181], 60) == [DAY, DAY + 121]


def watch_alerts_as_stored(times, gap_s, refresh_s):
    """As the function judges them: one position per invocation, against what the table holds (a state is
    written only when must_store says so)."""
    stored, raised = None, []
    for t in times:
        final, alerts, _ = fold(stored, [seen(t)], (), WATCH, gap_s)
        raised += [a.t for a in alerts if a.alert_type == "WATCHLIST"]
        if final is not None and must_store(stored, final, alerts, refresh_s):
            stored = final
    return raised


def test_the_gap_boundary_holds_when_quiet_positions_are_not_stored():
    # GIVEN a refresh of the stored state every 300 s (or 3,600), far longer than a gap of 60 s
    for refresh_s in (300, 3600):
        heard = [DAY + 10 * n for n in range(12)]              # every 10 s for two minutes
        last = heard[-1]
        # THEN unseen for exactly the gap is the same appearance, a second more a new one
        assert watch_alerts_as_stored(heard + [last + 60], 60, refresh_s) == [DAY]
        assert watch_alerts_as_stored(heard + [last + 61], 60, refresh_s) == [DAY, last + 61]
        # AND so at the default gap, after the aircraft was heard for longer than a refresh
        heard = [DAY + 10 * n for n in range(400)]
        last = heard[-1]
        assert watch_alerts_as_stored(heard + [last + 1800, last + 3601], 1800, refresh_s) == [DAY, last + 3601]


def test_a_refresh_longer_than_half_the_state_ttl_is_refused_naming_both():
    env = {"GEOFENCES_BUCKET": "fences", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:FlightAlerts",
           "ALERT_STATE_REFRESH_S": "3600", "ALERT_STATE_TTL_S": "7199", "WATCH_GAP_S": "60"}
    with pytest.raises(ConfigError, match="ALERT_STATE_REFRESH_S=3600 is more than half of ALERT_STATE_TTL_S=7199"):
        AlertSettings.from_env(env)
    assert AlertSettings.from_env({**env, "ALERT_STATE_TTL_S": "7200"}).state_refresh_s == 3600
    assert AlertSettings.from_env({**env, "ALERT_STATE_REFRESH_S": "0"}).state_refresh_s == 0


def test_live_state_expires_ttl_after_its_position_time():
    item = to_item("3c6444", AircraftState(t=int(NOW)), (), TTL, written_at=NOW + 2)
    assert int(item["expires_at"]["N"]) == int(NOW) + 2 + TTL


def test_the_state_of_a_replayed_past_day_expires_ttl_after_it_was_written_not_in_2021():
    item = to_item("3c6444", AircraftState(t=DAY), (), TTL, written_at=NOW)
    assert int(item["expires_at"]["N"]) == int(NOW) + TTL
    # a position stamped ahead of the writer's clock (skew) still gets its full TTL from its own time
    ahead = to_item("3c6444", AircraftState(t=int(NOW) + 600), (), TTL, written_at=NOW)
    assert int(ahead["expires_at"]["N"]) == int(NOW) + 600 + TTL


def test_the_store_stamps_each_write_from_its_clock():
    class Client:
        def __init__(self):
            self.items = []

        def put_item(self, **kwargs):
            self.items.append(kwargs["Item"])

    client, now = Client(), [NOW]
    store = StateStore(client, "FlightAlertState", TTL, clock=lambda: now[0])
    store.save("3c6444", AircraftState(t=DAY), (), None)
    now[0] += 3600  # an hour later the replay reaches this aircraft again
    store.save("3c6444", AircraftState(t=DAY + 10), (), DAY)
    assert [int(i["expires_at"]["N"]) for i in client.items] == [int(NOW) + TTL, int(NOW) + 3600 + TTL]


def test_a_watch_gap_longer_than_the_state_ttl_is_refused_naming_both():
    env = {"GEOFENCES_BUCKET": "fences", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:FlightAlerts",
           "WATCH_GAP_S": str(2 * 86_400), "ALERT_STATE_TTL_S": "86400"}
    with pytest.raises(ConfigError, match="WATCH_GAP_S=172800 is longer than ALERT_STATE_TTL_S=86400"):
        AlertSettings.from_env(env)
    assert AlertSettings.from_env({**env, "ALERT_STATE_TTL_S": str(3 * 86_400)}).watch_gap_s == 2 * 86_400
