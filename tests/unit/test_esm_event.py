"""The trigger's event must be the event AWS's Kafka event source mapping sends (saved AWS examples)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from saved_events import load_event
from trigger.esm_event import EsmEventBuilder, build_event



AWS_BOOTSTRAP = ("b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
                 "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092")
MSK_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2"


def record(topic="mytopic", partition=0, offset=15, timestamp=1545084650987, timestamp_type=0,
           key=b"k", value=b"v", headers=()):
    return ConsumerRecord(topic, partition, -1, offset, timestamp, timestamp_type, key, value, list(headers),
                          None, -1 if key is None else len(key), -1 if value is None else len(value), -1)


def record_like_aws_example(saved: dict) -> ConsumerRecord:
    """The ConsumerRecord kafka-python would hand us for the record in AWS's example event."""
    r = saved["records"]["mytopic-0"][0]
    headers = [(name, bytes(values)) for h in r["headers"] for name, values in h.items()]
    return record(r["topic"], r["partition"], r["offset"], r["timestamp"], 0,
                  base64.b64decode(r["key"]), base64.b64decode(r["value"]), headers)


def canonical_key(saved: dict) -> dict:
    """AWS's sample key "abcDEFghiJKLmnoPQRstuVWXyz1234==" is placeholder text, not canonical base64:
    its last group carries stray bits, so no real byte string encodes to it. Real bytes encode to
    "...123w=="; everything else in the example is compared unchanged."""
    expected = json.loads(json.dumps(saved))
    r = expected["records"]["mytopic-0"][0]
    r["key"] = base64.b64encode(base64.b64decode(r["key"])).decode()
    return expected


@pytest.mark.parametrize("name, source, arn", [
    ("aws_kafka_self_managed.json", "SelfManagedKafka", None),
    ("aws_kafka_msk.json", "aws:kafka", MSK_ARN),
])
def test_event_equals_the_saved_aws_example(name, source, arn):
    # GIVEN the record AWS's documented example event carries, as kafka-python delivers it
    saved = load_event(name)
    rec = record_like_aws_example(saved)

    # WHEN the trigger builds the event for it
    event = build_event([rec], AWS_BOOTSTRAP, source, arn)

    # THEN it is AWS's event, field for field
    assert event == canonical_key(saved)
    built, documented = event["records"]["mytopic-0"][0], saved["records"]["mytopic-0"][0]
    assert base64.b64decode(built["key"]) == base64.b64decode(documented["key"])
    assert base64.b64decode(built["value"]) == b"Hello, this is a test."
    assert bytes(built["headers"][0]["headerKey"]) == b"headerValue"


def test_self_managed_event_has_no_event_source_arn():
    event = build_event([record()], "localhost:9092")
    assert list(event) == ["eventSource", "bootstrapServers", "records"]
    assert event["eventSource"] == "SelfManagedKafka"


def test_null_key_has_no_key_field_and_tombstone_has_no_value_field():
    event = build_event([record(key=None, offset=1), record(value=None, offset=2)], "localhost:9092")
    keyless, tombstone = event["records"]["mytopic-0"]
    assert "key" not in keyless and base64.b64decode(keyless["value"]) == b"v"
    assert "value" not in tombstone and base64.b64decode(tombstone["key"]) == b"k"


def test_empty_key_and_value_are_present_but_empty():
    rec = event_record(build_event([record(key=b"", value=b"")], "h:1"))
    assert rec["key"] == "" and rec["value"] == ""


def event_record(event: dict) -> dict:
    return next(iter(event["records"].values()))[0]


def test_records_are_grouped_by_topic_partition_in_arrival_order():
    recs = [record("aviation-data", 1, 10), record("aviation-data", 0, 5), record("aviation-data", 1, 11)]
    event = build_event(recs, ["broker-1:9092", "broker-2:9092"])
    assert event["bootstrapServers"] == "broker-1:9092,broker-2:9092"
    assert list(event["records"]) == ["aviation-data-1", "aviation-data-0"]
    assert [r["offset"] for r in event["records"]["aviation-data-1"]] == [10, 11]


def test_log_append_time_and_binary_headers():
    rec = event_record(build_event([record(timestamp_type=1, headers=[("trace", b"\x00\xff"), ("n", b"")])], "h:1"))
    assert rec["timestampType"] == "LOG_APPEND_TIME"
    assert rec["headers"] == [{"trace": [0, 255]}, {"n": []}]


def test_the_event_is_valid_utf8_json_even_for_unicode_topic_and_header_names():
    builder = EsmEventBuilder("h:1")
    raw = builder.build([record(topic="vols-été", headers=[('na"me', b"x")])])
    event = json.loads(raw.decode("utf-8"))
    assert list(event["records"]) == ["vols-été-0"]
    assert event_record(event)["headers"] == [{'na"me': [120]}]


opt_bytes = st.one_of(st.none(), st.binary(max_size=300))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["aviation-data", "t", "ü"]), st.integers(0, 120),
                          st.integers(0, 2**40), st.integers(-1, 2**41), st.sampled_from([0, 1]),
                          opt_bytes, opt_bytes,
                          st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=4)), max_size=2)),
                min_size=1, max_size=8))
def test_predicted_size_is_exactly_the_built_size(rows):
    # The batch cutter relies on this to stay under 6 MB without building the event twice.
    builder = EsmEventBuilder("b-1:9092,b-2:9092", "aws:kafka", MSK_ARN)
    recs = [record(t, p, o, ts, tt, k, v, h) for t, p, o, ts, tt, k, v, h in rows]
    raw = builder.build(recs)
    assert builder.event_size(recs) == len(raw)
    assert all(builder.record_size(r) == len(builder.record_json(r)) for r in recs)
    json.loads(raw)
