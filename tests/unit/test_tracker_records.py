"""tracker.records.decode and tracker.flight_view: one Kafka record -> one row -> what the API shows."""
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saved_events import load_event
from tracker.flight_view import altitude_band, flight, geojson, round_half_up
from tracker.records import InvalidRecord, decode


def _raw(**changes) -> bytes:
    state = load_event("raw_state.json")
    state.update(changes)
    return json.dumps(state).encode()


def test_the_saved_state_becomes_a_row_with_trimmed_callsign_and_utc_times():
    # GIVEN the producer's saved record WHEN decoded THEN every column is typed and trimmed
    p = decode(_raw(), partition=3, offset=41)
    assert p.icao24 == "3c6444" and p.callsign == "DLH9LF"
    assert p.time_position == datetime(2024, 8, 1, 12, 34, 56, tzinfo=timezone.utc)
    assert p.last_contact == datetime(2024, 8, 1, 12, 34, 57, tzinfo=timezone.utc)
    assert (p.kafka_partition, p.kafka_offset) == (3, 41)
    assert p.on_ground is False and p.category == 0 and p.source == "synthetic"


def test_a_missing_position_time_falls_back_to_last_contact():
    p = decode(_raw(time_position=None), 0, 0)
    assert p.time_position == p.last_contact


def test_blank_callsign_is_null_and_uppercase_icao24_is_normalised():
    p = decode(_raw(callsign="        ", icao24="3C6444"), 0, 0)
    assert p.callsign is None and p.icao24 == "3c6444"


@pytest.mark.parametrize("value, reason", [
    (b"", "empty"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON list, not an object"),
    (_raw(icao24="zz"), "icao24"),
    (_raw(time_position=None, last_contact=None), "neither time_position nor last_contact"),
    (_raw(latitude=91.5), "latitude"),
    (_raw(longitude="8.5"), "longitude"),
    (_raw(on_ground="no"), "on_ground"),
    (_raw(time_position=1722515696000), "time_position"),  # milliseconds, not seconds
    (_raw(category=True), "category"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_a_malformed_record_is_rejected_with_a_reason_naming_the_problem(value, reason):
    with pytest.raises(InvalidRecord, match=reason):
        decode(value, 0, 0)


def test_an_unknown_content_type_is_rejected_not_guessed():
    with pytest.raises(InvalidRecord, match="content-type"):
        decode(_raw(), 0, 0, headers=[("content-type", b"text/csv")])


def test_a_protobuf_record_becomes_the_same_row_as_its_json_twin():
    from pipeline_common.state_codec import PROTOBUF, encode_state

    state = {**load_event("raw_state.json"), "category": 6, "vertical_rate": None}
    as_json = decode(json.dumps(state).encode(), 2, 9)
    as_proto = decode(encode_state(state, PROTOBUF), 2, 9, headers=[("content-type", PROTOBUF.encode())])
    assert as_proto == as_json and as_proto.category == 6 and as_proto.vertical_rate is None
    with pytest.raises(InvalidRecord, match="not a valid flightpipe.OpenSkyState Protobuf message"):
        decode(encode_state(state, PROTOBUF)[:-4], 2, 10, headers=[("content-type", PROTOBUF.encode())])


def test_flight_converts_units_like_the_lambda():
    f = flight(decode(_raw(), 0, 0))
    assert f["altitude_feet"] == 37000        # 11277.6 m, barometric wins over geometric
    assert f["velocity_knots"] == 448         # 230.5 m/s
    assert f["vertical_rate_fpm"] == 0
    assert f["time_position"] == "2024-08-01T12:34:56Z"
    assert f["callsign"] == "DLH9LF"


def test_geometric_altitude_is_used_when_barometric_is_missing_and_negative_altitude_rounds_half_up():
    p = decode(_raw(baro_altitude=None, geo_altitude=-15.24), 0, 0)
    assert flight(p)["altitude_feet"] == -50
    assert round_half_up(2.5) == 3 and round_half_up(-2.5) == -3


def test_altitude_bands_put_an_aircraft_on_the_ground_in_ground_whatever_its_altitude():
    assert altitude_band(decode(_raw(on_ground=True), 0, 0)) == "ground"
    assert altitude_band(decode(_raw(), 0, 0)) == "30-40k"
    assert altitude_band(decode(_raw(baro_altitude=None, geo_altitude=None), 0, 0)) == "0-10k"


def test_geojson_is_lon_lat_and_skips_aircraft_without_a_position():
    with_pos = flight(decode(_raw(), 0, 0))
    without = flight(decode(_raw(icao24="abcdef", latitude=None, longitude=None), 0, 0))
    doc = geojson([with_pos, without])
    assert [f["geometry"]["coordinates"] for f in doc["features"]] == [[8.57123456, 50.03321]]
    assert doc["features"][0]["properties"] == with_pos


# The fast path (_usual) must give exactly the row, or the refusal, of the field-by-field path (_checked).
_ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                        st.text(max_size=8), st.just([1]), st.just({}))


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(st.sampled_from([
    "icao24", "callsign", "origin_country", "time_position", "last_contact", "longitude", "latitude",
    "baro_altitude", "geo_altitude", "on_ground", "velocity", "true_track", "vertical_rate", "squawk", "category",
    "position_source", "source"]), _ODD_VALUES | st.sampled_from(["ABCDEF", " 3c6444", "3c6444", "", "   "]),
    max_size=4), same_times=st.booleans())
def test_the_fast_path_and_the_checked_path_agree_on_every_state(changes, same_times):
    from tracker.records import _checked, _usual

    state = {**load_event("raw_state.json"), **changes}
    if same_times:  # the fast path makes one datetime of two equal times
        state["last_contact"] = state["time_position"]
    fast = _usual(state, 1, 2)
    try:
        checked = _checked(state, 1, 2)
    except InvalidRecord:
        assert fast is None
    else:
        assert fast is None or (fast == checked and [type(v) for v in fast] == [type(v) for v in checked])


@pytest.mark.parametrize("extra", ['"fetched_at": NaN', '"sensors": [123456789012345678901234567890]',
                                   '"spi": "\\ud800"'])
def test_json_that_orjson_refuses_but_the_json_module_reads_decodes_as_before(extra):
    # GIVEN a record the shared JSON decoder accepts but orjson does not (NaN, a huge integer, a lone surrogate)
    value = _raw()[:-1] + b", " + extra.encode() + b"}"
    # THEN it is decoded as before (the tracker stores no such field)
    p = decode(value, 0, 0)
    assert p.icao24 == "3c6444" and p.callsign == "DLH9LF"


def test_a_lone_surrogate_in_a_stored_text_is_rejected_not_handed_to_the_database():
    # The json module reads "\ud800" into a str that cannot be encoded: the COPY would fail on it.
    value = _raw()[:-1] + b', "callsign": "\\ud800"}'
    with pytest.raises(InvalidRecord, match="callsign is not valid Unicode text"):
        decode(value, 0, 0)
