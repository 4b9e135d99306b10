"""The wire format of a state: JSON and Protobuf give the very same dict, nulls included; a record
the header calls Protobuf but is not gets a clear reason; the committed generated code is current."""
from __future__ import annotations

import base64
import copy

import pytest

from infra.deploy import protobuf_codegen
from kafka_esm import read_event
from pipeline_common.state_codec import (JSON, PROTOBUF, STATE_KEYS, UndecodableState, content_type_of,
                                         decode_state, encode_state, media_type)
from producer.state_vector import MESSAGE_FIELDS
from producer.synthetic import SyntheticFleet
from saved_events import load_event

FULL = {"icao24": "3c6444", "callsign": "DLH9LF", "origin_country": "Germany", "time_position": 1722515696,
        "last_contact": 1722515697, "longitude": 8.57123456, "latitude": 50.03321, "baro_altitude": 11277.6,
        "on_ground": False, "velocity": 230.5, "true_track": 93.2, "vertical_rate": -0.33, "sensors": [1234, 77],
        "geo_altitude": 11430.0, "squawk": "1000", "spi": True, "position_source": 2, "category": 6,
        "source": "opensky", "fetched_at": 1722515698.123}
NULLS = {**FULL, **{k: None for k in ("callsign", "time_position", "longitude", "latitude", "baro_altitude",
                                     "velocity", "true_track", "vertical_rate", "sensors", "geo_altitude",
                                     "squawk", "position_source", "category")}}


def test_the_schema_has_every_field_of_the_kafka_message_in_order():
    assert STATE_KEYS == MESSAGE_FIELDS


@pytest.mark.parametrize("state", [
    FULL,
    NULLS,                                                        # every nullable field null
    {**FULL, "sensors": []},                                      # an empty list is not a null list
    {**FULL, "category": 0, "position_source": 0, "vertical_rate": 0.0, "longitude": 0.0},  # zero is not null
    {**FULL, "baro_altitude": -15.24, "on_ground": True, "callsign": ""},  # negative altitude, empty callsign
])
def test_protobuf_round_trip_gives_exactly_what_json_gives(state):
    via_protobuf = decode_state(encode_state(state, PROTOBUF), PROTOBUF)
    via_json = decode_state(encode_state(state, JSON), JSON)
    assert via_protobuf == via_json == state
    assert list(via_protobuf) == list(state)


def test_a_synthetic_fleet_round_trips_and_protobuf_is_smaller():
    states = SyntheticFleet(300, seed=3, start_time=1_700_000_000.0).tick(1_700_000_000.0)
    json_bytes = proto_bytes = 0
    for state in states:
        encoded = encode_state(state, PROTOBUF)
        assert decode_state(encoded, PROTOBUF) == state
        proto_bytes += len(encoded)
        json_bytes += len(encode_state(state, JSON))
    assert proto_bytes < 0.5 * json_bytes


@pytest.mark.parametrize("value, reason", [
    (encode_state(FULL, PROTOBUF)[:-5], "not a valid flightpipe.OpenSkyState Protobuf message"),  # truncated
    (b"\xff\xff\xff\xff", "not a valid flightpipe.OpenSkyState Protobuf message"),
    (encode_state(FULL, JSON), "not a valid flightpipe.OpenSkyState Protobuf message"),  # JSON labelled Protobuf
    (b"", "it has no icao24"),
])
def test_malformed_protobuf_is_refused_with_a_reason(value, reason):
    with pytest.raises(UndecodableState, match=reason):
        decode_state(value, PROTOBUF)


def test_no_header_means_json_and_an_unknown_type_is_refused():
    assert decode_state(b'{"icao24":"3c6444"}', None) == {"icao24": "3c6444"}
    with pytest.raises(UndecodableState, match="content-type 'text/csv'"):
        decode_state(b"3c6444,DLH9LF", "text/csv")
    assert media_type(b"Application/X-Protobuf; messageType=x") == "application/x-protobuf"
    assert content_type_of([("source", b"opensky"), ("Content-Type", PROTOBUF.encode())]) == PROTOBUF


def test_the_committed_generated_code_is_what_the_proto_compiles_to():
    assert protobuf_codegen.GENERATED.read_bytes() == protobuf_codegen.fresh_output(), \
        "run `python -m infra.deploy.protobuf_codegen` (make setup) and commit src/pipeline_common/opensky_state_pb2.py"


# ---------------------------------------------------------------- the function's one decoding place
def as_protobuf_event(event: dict) -> dict:
    """The same ESM event with every JSON value re-encoded as Protobuf, each with its content-type."""
    event = copy.deepcopy(event)
    for records in event["records"].values():
        for record in records:
            try:
                state = decode_state(base64.b64decode(record["value"]), JSON)
            except (UndecodableState, TypeError):
                continue  # tombstones and malformed JSON stay as they are
            record["value"] = base64.b64encode(encode_state(state, PROTOBUF)).decode()
            record["headers"] = [*record.get("headers", []), {"content-type": list(PROTOBUF.encode())}]
    return event


def test_the_function_reads_protobuf_records_as_the_same_states_as_json():
    event = load_event("esm_flights_self_managed.json")
    as_json, as_proto = read_event(event), read_event(as_protobuf_event(event))
    assert [(r.partition, r.offset, r.state, r.error) for r in as_proto] == \
           [(r.partition, r.offset, r.state, r.error) for r in as_json]


def test_a_malformed_protobuf_record_fails_alone_with_its_reason():
    event = as_protobuf_event(load_event("esm_flights_self_managed.json"))
    [first, *_] = next(iter(event["records"].values()))
    first["value"] = base64.b64encode(base64.b64decode(first["value"])[:-3]).decode()
    records = read_event(event)
    assert records[0].state is None
    assert records[0].error.startswith("record value is not a valid flightpipe.OpenSkyState Protobuf message")
    # the others are read as before: only the tombstone and the malformed JSON record fail too
    as_json = read_event(load_event("esm_flights_self_managed.json"))
    assert [r.error for r in records[1:]] == [r.error for r in as_json[1:]]
