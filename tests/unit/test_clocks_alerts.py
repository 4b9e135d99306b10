"""The alert rules' time boundaries: WATCH_GAP_S (a new appearance) at its edge, the alert state's
TTL (ALERT_STATE_TTL_S) counted so that a replayed past day's state is not born expired, and never
shorter than the gap it has to remember."""
from __future__ import annotations

import pytest

from alert_settings import AlertSettings
from alert_state import StateStore, to_item
from flight_domain.alert_rules import AircraftState, Watchlist, fold, observe
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
