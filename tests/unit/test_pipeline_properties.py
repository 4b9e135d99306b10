"""Property-based tests (hypothesis) of what crosses component boundaries: OpenSky answer -> producer
message -> Kafka bytes -> ESM event -> function -> response the trigger acts on.

The single-component properties already live next to their code (parser rows: test_opensky_parser,
units and filter: test_lambda_transform, event size: test_esm_event); these check the contracts
between components, and the function's response as a whole.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

import flight_handler
from flight_settings import FunctionSettings
from flight_domain.flight_transform import MAX_EPOCH_S, InvalidState, evaluate
from kafka_esm import read_event
from producer.kafka_sink import encode_value
from producer.opensky import OpenSkyBadResponse, parse_states_response
from producer.state_vector import FIELDS, as_row, parse_state_vector, to_message
from producer.synthetic import SyntheticFleet
from sns_batch import MAX_BATCH_BYTES
from trigger.batch_processor import parse_item_failures
from trigger.esm_event import EsmEventBuilder, partition_key

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies
maybe = st.none().__or__
finite = st.floats(allow_nan=False, allow_infinity=False)
epoch = st.integers(0, 2**38)  # past the year 9999 (2**37.9) now and then
# Rows the OpenSky parser must accept: every documented field in its documented type and range.
valid_rows = st.tuples(
    st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06x}"),                # icao24
    maybe(st.text(max_size=8)),                                         # callsign
    st.text(max_size=40),                                               # origin_country
    maybe(epoch), epoch,                                                # time_position, last_contact
    maybe(st.floats(-180, 180)), maybe(st.floats(-90, 90)),            # longitude, latitude
    maybe(finite), st.booleans(), maybe(finite), maybe(st.floats(0, 360)), maybe(finite),
    maybe(st.lists(st.integers(0, 2**31), max_size=3)),                 # sensors
    maybe(finite), maybe(st.text(max_size=4)), st.booleans(), st.integers(0, 3),
    maybe(st.integers(0, 20)),                                          # category (extended=1)
).map(list)

json_scalars = st.none() | st.booleans() | st.integers(-2**53, 2**53) | finite | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def consumer_record(value: bytes | None, offset: int, partition: int = 0, timestamp: int = 1_700_000_000_000,
                    key: bytes | None = b"k", topic: str = "aviation-data") -> ConsumerRecord:
    return ConsumerRecord(topic, partition, -1, offset, timestamp, 0, key, value, [], None,
                          -1 if key is None else len(key), -1 if value is None else len(value), -1)


def through_kafka_and_the_esm(values: list[bytes | None]) -> list:
    """Kafka values -> the trigger's ESM event bytes -> what the function reads from them."""
    records = [consumer_record(v, offset) for offset, v in enumerate(values)]
    event = json.loads(EsmEventBuilder("broker:9092").build(records))
    return read_event(event)


# --------------------------------------------------------------------------- producer -> function
@PROPERTY
@given(valid_rows)
def test_a_state_the_producer_publishes_reaches_the_function_exactly_as_sent(row):
    # GIVEN any row the producer's parser accepts, turned into the Kafka message it publishes
    state = parse_state_vector(row)
    message = to_message(state, "opensky", 1_700_000_000.5)
    payload = encode_value(message)

    # WHEN it travels through Kafka and the trigger's ESM event to the function
    [record] = through_kafka_and_the_esm([payload])

    # THEN the function reads back the very same message, field for field
    assert record.error is None
    assert record.state == message and list(record.state) == [*FIELDS, "source", "fetched_at"]
    assert parse_state_vector(as_row(record.state)) == state


@PROPERTY
@given(valid_rows)
def test_the_function_rejects_a_published_state_only_for_a_documented_reason(row):
    """The contract between producer and function: whatever the producer publishes, the function
    publishes or filters it, except for three things the producer's parser lets through and the
    function must refuse (and dead-letter, with the reason): a blank origin_country (SNS cannot filter
    on an empty attribute), a time beyond the year 9999, a negative ground speed, and an altitude or
    ground speed so large that feet or knots overflow a float."""
    state = parse_state_vector(row)
    try:
        notification, reason = evaluate(to_message(state, "opensky", 0.0))
    except InvalidState as exc:
        allowed = (not state["origin_country"].strip()
                   or any(state[f] is not None and state[f] > MAX_EPOCH_S for f in ("time_position", "last_contact"))
                   or (state["velocity"] is not None and state["velocity"] < 0)
                   or (state["baro_altitude"] or state["geo_altitude"] or 0) * 3.28084 in (math.inf, -math.inf)
                   or (state["velocity"] or 0) * 1.943844 in (math.inf, -math.inf))
        assert allowed, f"rejected a valid published state: {exc}"
        return
    assert (notification is None) != (reason is None)
    if notification is not None:
        assert notification["icao24"] == state["icao24"] and notification["altitude_feet"] >= 0


@PROPERTY
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()) | st.none())
def test_any_kafka_value_is_read_as_a_state_or_failed_with_a_reason(value):
    [record] = through_kafka_and_the_esm([value])
    if record.error is None:
        assert isinstance(record.state, dict) and json.loads(value) == record.state
    else:
        assert record.state is None and record.error


@PROPERTY
@given(st.dictionaries(st.sampled_from(FIELDS + ("source", "fetched_at")), json_values, max_size=10))
def test_a_record_without_an_aircraft_is_never_counted_as_filtered(fields):
    # Only a state (icao24, origin_country, a time) can be "on the ground"; anything else is malformed
    # and must reach the dead-letter topic instead of vanishing into the filtered count.
    assume(not (isinstance(fields.get("icao24"), str) and fields["icao24"].strip()))
    with pytest.raises(InvalidState):
        evaluate(fields)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(1_500_000_000, 2_000_000_000), st.integers(0, 7 * 24 * 3600))
def test_every_synthetic_state_is_valid_for_the_producer_and_the_function(seed, start, later):
    fleet = SyntheticFleet(40, seed, float(start))
    for state in fleet.tick(float(start + later)):
        assert parse_state_vector(as_row(state)) == {k: state[k] for k in FIELDS}
        notification, reason = evaluate(state)  # never InvalidState
        assert (notification is None) != (reason is None)


# --------------------------------------------------------------------------- OpenSky answers
@PROPERTY
@given(json_values | st.fixed_dictionaries({"time": st.integers(0, 2**33) | json_scalars,
                                            "states": st.none() | st.lists(valid_rows | json_values, max_size=6)}))
def test_any_states_answer_is_parsed_row_by_row_or_refused_never_crashes(doc):
    try:
        snapshot = parse_states_response(doc)
    except OpenSkyBadResponse as exc:
        assert str(exc)
        return
    rows = doc.get("states") or []
    assert len(snapshot.states) + len(snapshot.rejected) == len(rows)
    assert [i for i, _ in snapshot.rejected] == sorted({i for i, _ in snapshot.rejected})
    assert all(reason for _, reason in snapshot.rejected)
    for state in snapshot.states:  # what was kept is stable: parsing it again changes nothing
        assert parse_state_vector(as_row(state)) == state
        json.loads(encode_value(to_message(state, "opensky", 0.0)))  # and is strict JSON (no NaN)


# --------------------------------------------------------------------------- the function's response
class FlakySns:
    """PublishBatch that fails the entries whose message hash says so; records what it accepted."""

    def __init__(self, fail_mod: int):
        self.fail_mod = fail_mod
        self.accepted: list[dict] = []

    def publish_batch(self, TopicArn, PublishBatchRequestEntries):
        ok, failed = [], []
        for entry in PublishBatchRequestEntries:
            if self.fail_mod and hash(entry["Message"]) % self.fail_mod == 0:
                failed.append({"Id": entry["Id"], "Code": "InvalidParameter", "Message": "refused",
                               "SenderFault": True})
            else:
                ok.append({"Id": entry["Id"], "MessageId": "m"})
                self.accepted.append(entry)
        return {"Successful": ok, "Failed": failed}


class NoMetrics:
    def put_metric_data(self, **_):
        return {}


airborne = st.fixed_dictionaries({
    "icao24": st.integers(0, 0xFFFFFF).map(lambda i: f"{i:06x}"),
    "origin_country": st.sampled_from(["Germany", "Chile"]),
    "time_position": st.integers(0, 2**31), "last_contact": st.integers(0, 2**31),
    "longitude": st.floats(-180, 180), "latitude": st.floats(-90, 90), "baro_altitude": st.floats(1, 15000),
    "on_ground": st.booleans(), "velocity": maybe(st.floats(0, 400))})
kafka_values = (airborne.map(lambda s: json.dumps(s).encode()) | st.binary(max_size=40) | st.none()
                | json_values.map(lambda v: json.dumps(v).encode()))


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 2), kafka_values, st.none() | st.integers(0, 2**41)), max_size=25),
       st.sampled_from([0, 2, 5]))
def test_the_response_accounts_for_every_record(rows, fail_mod):
    # GIVEN any mix of records across partitions, and an SNS that refuses some messages
    records, offsets = [], {}
    for partition, value, timestamp in rows:
        offsets[partition] = offsets.get(partition, 100) + 1
        records.append(consumer_record(value, offsets[partition], partition, -1 if timestamp is None else timestamp))
    event = json.loads(EsmEventBuilder("broker:9092").build(records))
    sns = FlakySns(fail_mod)
    runtime = flight_handler.configure(FunctionSettings(sns_topic_arn="arn:aws:sns:us-east-1:123456789012:t",
                                                 publish_max_attempts=1), sns_client=sns, cloudwatch_client=NoMetrics())
    try:
        # WHEN the function handles the event
        result = flight_handler.process_event(event, runtime)
    finally:
        flight_handler.reset()

    # THEN every record is counted exactly once: published, filtered, or reported failed with a reason
    assert result["received"] == len(records)
    assert result["published"] == len(sns.accepted)
    assert result["filtered"] + result["published"] + result["failed"] == result["received"]
    sent = {(partition_key(r.topic, r.partition), r.offset) for r in records}
    failed = [(f["itemIdentifier"]["partition"], f["itemIdentifier"]["offset"]) for f in result["batchItemFailures"]]
    assert len(failed) == len(set(failed)) == result["failed"] and set(failed) <= sent
    assert [(r["partition"], r["offset"]) for r in result["failureReasons"]] == failed
    assert all(r["reason"] for r in result["failureReasons"])
    # and the trigger, reading that response, retries exactly those records
    assert parse_item_failures(json.dumps(result).encode(), records).keys == frozenset(failed)
    for entry in sns.accepted:  # each published message is filterable and fits SNS
        body = json.loads(entry["Message"])
        assert entry["MessageAttributes"]["origin_country"]["StringValue"] == body["origin_country"]
        assert len(entry["Message"].encode()) <= MAX_BATCH_BYTES


# Mostly identifiers of records that were sent, so the checks behind the lookup are reached too.
identifiers = st.fixed_dictionaries({
    "partition": st.just("aviation-data-0") | st.just("aviation-data-1") | json_values,
    "offset": st.integers(0, 2) | st.integers(-1, 4) | json_values})
answers = st.fixed_dictionaries({}, optional={
    "batchItemFailures": json_values | st.lists(st.fixed_dictionaries({"itemIdentifier": identifiers}) | json_values,
                                                max_size=4),
    "failureReasons": json_scalars | st.lists(identifiers.map(lambda i: {**i, "reason": "r"}) | json_values,
                                              max_size=4),
})


@PROPERTY
@given(answers.map(lambda a: json.dumps(a).encode()) | json_values.map(lambda v: json.dumps(v).encode())
       | st.binary(max_size=60))
# Answers that crashed the trigger (TypeError) before, looping on the batch instead of failing it:
@example(b'{"batchItemFailures": [{"itemIdentifier": {"partition": "aviation-data-0", "offset": 0}}], '
         b'"failureReasons": 5}')
@example(b'{"batchItemFailures": [{"itemIdentifier": {"partition": ["aviation-data-0"], "offset": 0}}]}')
@example(b'{"batchItemFailures": [{"itemIdentifier": {"partition": "aviation-data-0", "offset": 0}}], '
         b'"failureReasons": [{"partition": {}, "offset": 0, "reason": "x"}]}')
def test_the_trigger_reads_any_function_answer_without_crashing(payload):
    # A function answer is whatever the function's author wrote: the trigger must never crash on it.
    records = [consumer_record(b"{}", offset) for offset in range(3)]
    sent = {(partition_key(r.topic, r.partition), r.offset) for r in records}
    parsed = parse_item_failures(payload, records)
    assert parsed.keys <= sent
    assert not (parsed.keys and parsed.problem)
