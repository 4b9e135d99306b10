"""Parsing of /states/all: the saved response, edge-case rows, and property tests that bad rows never crash."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.opensky import OpenSkyBadResponse, parse_states_response
from producer.state_vector import FIELDS, InvalidStateVector, as_row, parse_state_vector, to_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def snapshot():
    return parse_states_response(json.loads((FIXTURES / "opensky_states_all.json").read_text()))


def by_icao(snapshot, icao24):
    return next(s for s in snapshot.states if s["icao24"] == icao24)


# ---------------------------------------------------------------- the saved response
def test_every_row_of_the_saved_response_is_parsed(snapshot):
    raw = json.loads((FIXTURES / "opensky_states_all.json").read_text())
    assert snapshot.time == raw["time"]
    assert len(snapshot.states) == len(raw["states"]) == 37
    assert snapshot.rejected == []
    assert all(list(state) == list(FIELDS) for state in snapshot.states)


def test_fields_are_mapped_by_documented_index(snapshot):
    # GIVEN row ["3c65a1","DLH4AB  ","Germany",tp,lc,11.2713,49.1108,11277.6,false,230.47,93.21,0.0,null,11430.0,"2071",false,0,4]
    s = by_icao(snapshot, "3c65a1")
    assert (s["longitude"], s["latitude"]) == (11.2713, 49.1108)
    assert s["baro_altitude"] == 11277.6 and s["geo_altitude"] == 11430.0
    assert s["on_ground"] is False
    assert (s["velocity"], s["true_track"], s["vertical_rate"]) == (230.47, 93.21, 0.0)
    assert s["squawk"] == "2071" and s["spi"] is False
    assert s["position_source"] == 0 and s["category"] == 4
    assert s["last_contact"] >= s["time_position"]


def test_callsigns_are_stripped_and_empty_ones_become_null(snapshot):
    assert by_icao(snapshot, "3c6444")["callsign"] == "DLH9LF"       # "DLH9LF  " on the wire
    assert by_icao(snapshot, "a3b5d0")["callsign"] is None           # null
    assert by_icao(snapshot, "c04049")["callsign"] is None           # "" (no callsign received)


def test_on_ground_aircraft_keep_null_altitudes(snapshot):
    s = by_icao(snapshot, "3c6444")
    assert s["on_ground"] is True and s["baro_altitude"] is None and s["geo_altitude"] is None


def test_on_ground_with_an_altitude_is_kept_as_reported(snapshot):
    # A surface report can carry a stale barometric altitude; the producer publishes raw data.
    s = by_icao(snapshot, "4240eb")
    assert s["on_ground"] is True and s["baro_altitude"] == 609.6


def test_rows_without_the_extended_field_get_a_null_category(snapshot):
    assert by_icao(snapshot, "4240eb")["category"] is None  # 17 elements


def test_a_short_row_is_padded_with_nulls(snapshot):
    s = by_icao(snapshot, "a65c3f")  # only 9 elements arrived
    assert s["latitude"] == 35.0424 and s["on_ground"] is False
    assert s["velocity"] is None and s["squawk"] is None and s["category"] is None
    assert s["spi"] is False


def test_an_aircraft_without_a_recent_position_is_kept_with_null_position(snapshot):
    s = by_icao(snapshot, "4bb86c")
    assert s["time_position"] is None and s["longitude"] is None and s["latitude"] is None


def test_null_states_means_no_aircraft():
    assert parse_states_response({"time": 1700000000, "states": None}).states == []


@pytest.mark.parametrize("doc, fragment", [
    ([], "expected a JSON object"),
    ({"states": []}, "no integer 'time'"),
    ({"time": "soon", "states": []}, "no integer 'time'"),
    ({"time": 1, "states": {"a": 1}}, "'states' must be an array"),
])
def test_a_malformed_document_is_an_error(doc, fragment):
    with pytest.raises(OpenSkyBadResponse, match=fragment):
        parse_states_response(doc)


def test_message_has_the_shared_shape(snapshot):
    message = to_message(by_icao(snapshot, "3c6444"), "opensky", 1731409211.5)
    assert list(message) == list(FIELDS) + ["source", "fetched_at"]
    assert message["source"] == "opensky" and message["fetched_at"] == 1731409211.5
    assert json.loads(json.dumps(message)) == message


# ---------------------------------------------------------------- single rows with real edge cases
GOOD = ["3c6444", "DLH9LF  ", "Germany", 1700000000, 1700000001, 8.5, 50.0, 11277.6, False, 230.5,
        93.2, 0.0, None, 11430.0, "1000", False, 0, 0]


@pytest.mark.parametrize("index, value, reason", [
    (0, "3c644", "icao24 must be 6 hex digits"),
    (0, None, "icao24 must be 6 hex digits"),
    (2, None, "origin_country must be a string"),
    (4, None, "last_contact is missing"),
    (4, "1700000001", "last_contact must be a number"),
    (4, 1.5, "last_contact must be an integer"),
    (5, 200.0, "longitude 200.0 is outside"),
    (6, -91.0, "latitude -91.0 is outside"),
    (7, True, "baro_altitude must be a number"),
    (7, float("nan"), "baro_altitude must be finite"),
    (8, None, "on_ground is missing"),
    (8, "false", "on_ground must be true/false"),
    (12, [1, "x"], "sensors must be an array of integers"),
    (14, 1000, "squawk must be a string"),
])
def test_a_bad_row_is_rejected_with_a_reason_naming_the_field(index, value, reason):
    row = list(GOOD)
    row[index] = value
    with pytest.raises(InvalidStateVector) as err:
        parse_state_vector(row)
    assert reason in err.value.reason


def test_a_row_that_is_not_an_array_is_rejected():
    with pytest.raises(InvalidStateVector, match="must be an array"):
        parse_state_vector({"icao24": "3c6444"})


def test_bad_rows_are_rejected_one_by_one_and_the_rest_kept():
    bad = list(GOOD)
    bad[8] = None
    snap = parse_states_response({"time": 1700000001, "states": [GOOD, bad, "junk", GOOD[:3]]})
    assert [s["icao24"] for s in snap.states] == ["3c6444"]
    assert [i for i, _ in snap.rejected] == [1, 2, 3]
    assert "on_ground is missing" in snap.rejected[0][1]


def test_negative_altitude_and_upper_case_icao24_are_accepted():
    row = list(GOOD)
    row[0], row[7] = "3C6444", -30.48  # below sea level (Amsterdam, Dead Sea) is real
    s = parse_state_vector(row)
    assert s["icao24"] == "3c6444" and s["baro_altitude"] == -30.48


def test_extra_trailing_elements_are_ignored():
    assert parse_state_vector(GOOD + ["future field"]) == parse_state_vector(GOOD)


# ---------------------------------------------------------------- property tests
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


def _check_parsed(state: dict) -> None:
    assert list(state) == list(FIELDS)
    assert len(state["icao24"]) == 6
    assert isinstance(state["on_ground"], bool) and isinstance(state["last_contact"], int)
    for name in ("longitude", "latitude", "baro_altitude", "velocity", "true_track", "vertical_rate",
                 "geo_altitude"):
        assert state[name] is None or (isinstance(state[name], float) and math.isfinite(state[name]))
    json.dumps(state, allow_nan=False)  # always publishable as strict JSON


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.lists(json_values, max_size=22)))
def test_arbitrary_input_never_crashes_the_parser(row):
    try:
        state = parse_state_vector(row)
    except InvalidStateVector as exc:
        assert exc.reason  # a rejection always says why
    else:
        _check_parsed(state)


hex6 = st.text("0123456789abcdef", min_size=6, max_size=6)
opt_float = st.none() | st.floats(-1e5, 1e5, allow_nan=False)
valid_rows = st.tuples(
    hex6, st.none() | st.text("ABCDEFGHIJ0123456789", min_size=1, max_size=8).map(lambda c: c.ljust(8)),
    st.sampled_from(["Germany", "United States", ""]), st.none() | st.integers(0, 2**31),
    st.integers(0, 2**31), st.none() | st.floats(-180, 180), st.none() | st.floats(-90, 90), opt_float,
    st.booleans(), opt_float, opt_float, opt_float, st.none() | st.lists(st.integers(0, 10**6), max_size=3),
    opt_float, st.none() | st.text("01234567", min_size=4, max_size=4), st.booleans(),
    st.integers(0, 3), st.none() | st.integers(0, 20),
).map(list)


@settings(max_examples=200, deadline=None)
@given(valid_rows, st.sampled_from([17, 18]))
def test_well_formed_rows_of_either_length_parse_and_round_trip(row, length):
    state = parse_state_vector(row[:length])
    _check_parsed(state)
    expected = row[:length] + [None] * (18 - length)
    expected[1] = expected[1].strip() if expected[1] else None
    assert as_row(state) == expected


wrong_types = {
    0: st.integers() | st.none() | st.text("xyz", min_size=1, max_size=6),
    2: st.integers() | st.none() | st.booleans(),
    4: st.text(max_size=5) | st.none() | st.booleans(),
    8: st.integers() | st.none() | st.text(max_size=3),
    9: st.text(min_size=1, max_size=3) | st.booleans(),
    15: st.integers() | st.text(min_size=1, max_size=3),
}


@settings(max_examples=200, deadline=None)
@given(valid_rows, st.sampled_from(sorted(wrong_types)).flatmap(lambda i: st.tuples(st.just(i), wrong_types[i])))
def test_one_wrongly_typed_field_rejects_the_row_and_names_it(row, replacement):
    index, value = replacement
    row[index] = value
    with pytest.raises(InvalidStateVector) as err:
        parse_state_vector(row)
    assert FIELDS[index] in err.value.reason
