"""The pure flight transformations: airborne filter, units, rounding, ISO time, malformed input."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from flight_domain.flight_transform import (OUTPUT_FIELDS, InvalidState, airborne_reason, epoch_to_iso, evaluate, iso_to_epoch,
                              metres_to_feet, mps_to_knots, round_half_up, to_notification)


def state(**overrides) -> dict:
    base = {"icao24": "3c6444", "callsign": "DLH9LF  ", "origin_country": "Germany", "time_position": 1722515696,
            "last_contact": 1722515697, "longitude": 8.5712, "latitude": 50.0332, "baro_altitude": 11277.6,
            "on_ground": False, "velocity": 230.5, "true_track": 93.2, "vertical_rate": 0.0, "sensors": None,
            "geo_altitude": 11430.0, "squawk": "1000", "spi": False, "position_source": 0, "category": 0,
            "source": "synthetic", "fetched_at": 1722515698.123}
    base.update(overrides)
    return base


def test_airborne_state_becomes_the_documented_notification():
    # GIVEN a cruising Lufthansa flight  WHEN evaluated  THEN exactly the seed's fields, converted
    notification, reason = evaluate(state())
    assert reason is None
    assert notification == {"icao24": "3c6444", "callsign": "DLH9LF", "origin_country": "Germany",
                            "time_position": "2024-08-01T12:34:56Z", "longitude": 8.5712, "latitude": 50.0332,
                            "altitude_feet": 37000, "velocity_knots": 448}
    assert tuple(notification) == OUTPUT_FIELDS


@pytest.mark.parametrize("overrides, reason", [
    ({"on_ground": True}, "on ground"),
    ({"on_ground": True, "baro_altitude": 150.0}, "on ground"),            # on ground despite an altitude
    ({"longitude": None}, "no position"),
    ({"latitude": None}, "no position"),
    ({"baro_altitude": None, "geo_altitude": None}, "no altitude"),
    ({"baro_altitude": 0.0}, "altitude 0.0 m is not above 0"),
    ({"baro_altitude": -30.5, "geo_altitude": 100.0}, "altitude -30.5 m is not above 0"),  # baro wins when present
    ({"baro_altitude": None, "geo_altitude": -5.0}, "altitude -5.0 m is not above 0"),
])
def test_flights_not_in_the_air_are_filtered_with_a_reason(overrides, reason):
    assert evaluate(state(**overrides)) == (None, reason)


def test_geometric_altitude_is_used_when_barometric_is_missing():
    notification, _ = evaluate(state(baro_altitude=None, geo_altitude=5000.0))
    assert notification["altitude_feet"] == 16404  # 5000 m x 3.28084 = 16404.2


def test_null_time_position_falls_back_to_last_contact():
    notification, _ = evaluate(state(time_position=None, last_contact=1722515697))
    assert notification["time_position"] == "2024-08-01T12:34:57Z"


def test_null_callsign_and_blank_callsign_become_null():
    assert evaluate(state(callsign=None))[0]["callsign"] is None
    assert evaluate(state(callsign="        "))[0]["callsign"] is None
    assert evaluate(state(callsign="  BAW1 "))[0]["callsign"] == "BAW1"


def test_null_velocity_gives_null_knots_and_missing_optional_fields_are_fine():
    minimal = {"icao24": "abc123", "origin_country": "France", "last_contact": 0, "longitude": 0.0,
               "latitude": 0.0, "geo_altitude": 10.0}
    notification, _ = evaluate(minimal)
    assert notification["velocity_knots"] is None
    assert notification["callsign"] is None
    assert notification["time_position"] == "1970-01-01T00:00:00Z"
    assert notification["altitude_feet"] == 33


def test_coordinates_are_rounded_to_five_decimals():
    notification, _ = evaluate(state(longitude=8.571234567, latitude=-50.033215))
    assert notification["longitude"] == 8.57123
    assert notification["latitude"] == -50.03322 or notification["latitude"] == -50.03321  # binary float ties


@pytest.mark.parametrize("overrides, message", [
    ({"icao24": None}, "icao24 is missing"),
    ({"icao24": "   "}, "icao24 is missing"),
    ({"origin_country": None}, "origin_country is missing"),
    ({"origin_country": 7}, "origin_country is not a string"),
    ({"longitude": float("nan")}, "longitude is not finite"),
    ({"baro_altitude": float("inf")}, "baro_altitude is not finite"),
    ({"velocity": "fast"}, "velocity is not a number"),
    ({"latitude": True}, "latitude is not a number"),
    ({"on_ground": "no"}, "on_ground is not a boolean"),
    ({"longitude": 181.0}, "longitude 181.0 is outside -180..180"),
    ({"latitude": -90.5}, "latitude -90.5 is outside -90..90"),
    ({"time_position": None, "last_contact": None}, "time_position and last_contact are both missing"),
    ({"time_position": -1}, "time_position is outside"),
    ({"time_position": 1e20}, "time_position is outside"),
    ({"velocity": -3.0}, "velocity -3.0 m/s is negative"),
    ({"callsign": 12}, "callsign is not a string"),
    ({"baro_altitude": 1e308}, "value out of range"),
    ({"velocity": 1e308}, "value out of range"),  # finite m/s, infinite knots (Hypothesis found 9.248e307)
])
def test_malformed_states_are_rejected_with_a_reason(overrides, message):
    with pytest.raises(InvalidState, match=message.replace("(", r"\(").replace(".", r"\.")):
        evaluate(state(**overrides))


@pytest.mark.parametrize("event", [None, "text", 42, ["a"], []])
def test_a_state_that_is_not_an_object_is_rejected(event):
    with pytest.raises(InvalidState, match="not a JSON object"):
        evaluate(event)


def test_units_and_rounding_are_documented_values():
    assert metres_to_feet(1.0) == 3.28084
    assert mps_to_knots(1.0) == 1.943844
    assert round_half_up(2.5) == 3 and round_half_up(3.5) == 4   # not banker's rounding
    assert round_half_up(2.4999) == 2 and round_half_up(-2.5) == -3
    assert epoch_to_iso(1722515696.999) == "2024-08-01T12:34:56Z"  # fractions truncated


# --- properties ------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
# Plausible values mixed with junk, so that all three outcomes (published, filtered, rejected) occur.
anything = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**31), st.floats(), st.floats(-100, 20000),
                     st.sampled_from(["", " ", "3c6444", "Germany", "NaN"]), st.lists(st.integers(), max_size=2))


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_feet_round_trip(metres):
    assert math.isclose(metres_to_feet(metres) / 3.28084, metres, rel_tol=1e-12, abs_tol=1e-9)


@given(st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_knots_round_trip_and_rounding_error_is_at_most_half_a_knot(mps):
    assert math.isclose(mps_to_knots(mps) / 1.943844, mps, rel_tol=1e-12, abs_tol=1e-9)
    assert abs(round_half_up(mps_to_knots(mps)) - mps_to_knots(mps)) <= 0.5


@given(st.integers(min_value=0, max_value=253402300799))
def test_iso_time_round_trips_and_ends_in_z(epoch):
    text = epoch_to_iso(epoch)
    assert text.endswith("Z") and len(text) == 20
    assert iso_to_epoch(text) == epoch


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={
    key: anything for key in ("icao24", "callsign", "origin_country", "time_position", "last_contact",
                              "longitude", "latitude", "baro_altitude", "geo_altitude", "on_ground", "velocity")}))
def test_arbitrary_input_is_published_filtered_or_rejected_with_a_reason_never_crashes(fields):
    try:
        notification, reason = evaluate(fields)
    except InvalidState as exc:
        assert str(exc)
        return
    if notification is None:
        assert reason
    else:
        assert tuple(notification) == OUTPUT_FIELDS
        assert notification["altitude_feet"] >= 0
        assert notification["time_position"].endswith("Z")


@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90), alt=st.floats(0.01, 20000), vel=st.floats(0, 400),
       ts=st.integers(0, 2**31))
def test_every_valid_airborne_state_is_published(lon, lat, alt, vel, ts):
    notification, reason = evaluate(state(longitude=lon, latitude=lat, baro_altitude=alt, velocity=vel,
                                          time_position=ts))
    assert reason is None
    assert notification["altitude_feet"] == round_half_up(alt * 3.28084)
    assert notification["velocity_knots"] == round_half_up(vel * 1.943844)
    assert abs(notification["longitude"] - lon) <= 5e-6 and abs(notification["latitude"] - lat) <= 5e-6
    assert iso_to_epoch(notification["time_position"]) == ts


def test_filter_and_conversion_are_usable_on_their_own():
    assert airborne_reason(state()) is None
    assert airborne_reason(state(on_ground=True)) == "on ground"
    assert to_notification(state())["altitude_feet"] == 37000
    with pytest.raises(InvalidState, match="no position or altitude"):
        to_notification(state(latitude=None))
