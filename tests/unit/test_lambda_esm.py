"""Reading AWS's documented Kafka ESM events (saved copies), raw states and lists of raw states."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kafka_esm import RAW_PARTITION, decode_headers, is_esm_event, read_event
from saved_events import load_event




@pytest.mark.parametrize("name, source", [("aws_kafka_msk.json", "aws:kafka"),
                                          ("aws_kafka_self_managed.json", "SelfManagedKafka")])
def test_saved_aws_events_are_read_record_by_record(name, source):
    # GIVEN AWS's documented example (value "Hello, this is a test." is not JSON)
    event = load_event(name)
    assert event["eventSource"] == source and is_esm_event(event)
    # WHEN read
    [record] = read_event(event)
    # THEN its identity comes from the records map, and the non-JSON value is an error with a reason
    assert record.identifier() == {"partition": "mytopic-0", "offset": 15}
    assert record.topic == "mytopic" and record.timestamp_ms == 1545084650987
    assert record.key == base64.b64decode("abcDEFghiJKLmnoPQRstuVWXyz1234==")
    assert record.state is None and record.error.startswith("record value is not valid JSON")


def test_saved_aws_event_headers_are_lists_of_byte_values():
    record = load_event("aws_kafka_msk.json")["records"]["mytopic-0"][0]
    assert decode_headers(record["headers"]) == [("headerKey", b"headerValue")]
    assert decode_headers([{"h": "aGVhZGVyVmFsdWU="}]) == [("h", b"headerValue")]  # older docs: base64 string
    assert decode_headers(None) == []


def test_flight_event_keeps_event_order_and_decodes_every_record():
    records = read_event(load_event("esm_flights_self_managed.json"))
    assert [(r.partition, r.offset) for r in records] == [
        ("aviation-data-0", 100), ("aviation-data-0", 101), ("aviation-data-0", 102), ("aviation-data-0", 103),
        ("aviation-data-1", 7), ("aviation-data-1", 8), ("aviation-data-1", 9), ("aviation-data-1", 10),
        ("aviation-data-1", 11)]
    by_offset = {r.offset: r for r in records}
    assert by_offset[100].state["callsign"] == "DLH9LF  " and by_offset[100].key == b"3c6444"
    assert by_offset[103].key is None and by_offset[103].state["origin_country"] == "France"  # no key: fine
    assert by_offset[7].error == "record value is null (a tombstone): there is no state to process"
    assert by_offset[8].error.startswith("record value is not valid JSON")


def _esm(value, **extra):
    record = {"topic": "aviation-data", "partition": 3, "offset": 42, "timestamp": 1, "timestampType": "CREATE_TIME",
              "value": value, "headers": [], **extra}
    return {"eventSource": "aws:kafka", "records": {"aviation-data-3": [record]}}


@pytest.mark.parametrize("value, error", [
    ("not base64!", "record value is not valid base64"),
    (base64.b64encode(b"\xff\xfe").decode(), "record value is not UTF-8"),
    (base64.b64encode(b"[1, 2]").decode(), "record value is JSON list, not an object"),
    (12, "record value is not a base64 string but int"),
])
def test_unreadable_values_get_a_reason(value, error):
    [record] = read_event(_esm(value))
    assert record.error == error and record.identifier() == {"partition": "aviation-data-3", "offset": 42}


def test_partition_given_as_string_and_missing_topic_are_tolerated():
    event = _esm(base64.b64encode(b"{}").decode(), partition="3")
    del event["records"]["aviation-data-3"][0]["topic"]
    [record] = read_event(event)
    assert record.topic == "aviation-data" and record.state == {} and record.error is None


def test_record_without_offset_is_an_error():
    event = _esm(base64.b64encode(b"{}").decode())
    del event["records"]["aviation-data-3"][0]["offset"]
    [record] = read_event(event)
    assert record.error == "record has no integer offset"


def test_raw_state_and_list_of_raw_states():
    raw = load_event("raw_state.json")
    [single] = read_event(raw)
    assert single.state == raw and single.identifier() == {"partition": RAW_PARTITION, "offset": 0}
    many = read_event([raw, {"icao24": "x"}, "junk"])
    assert [r.identifier()["offset"] for r in many] == [0, 1, 2] and many[2].state == "junk"


def test_an_event_of_another_type_is_one_failed_record():
    [record] = read_event("hello")
    assert record.error.startswith("event is str")


def test_empty_esm_event_has_no_records():
    assert read_event({"eventSource": "SelfManagedKafka", "records": {}}) == []
