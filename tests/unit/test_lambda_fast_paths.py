"""The function's hot-path shortcuts (made for the benchmarks) behave exactly like the general code they skip."""
from __future__ import annotations

import base64
import json
import math
from urllib.parse import parse_qsl

import pytest
from botocore.awsrequest import AWSRequest
from moto import mock_aws

import flight_handler
from flight_settings import FunctionSettings
from flight_domain.flight_transform import InvalidState, evaluate
from infra.deploy import aws_resources
from kafka_esm import read_event

STATE = {"icao24": "3c6444", "callsign": "DLH9LF ", "origin_country": "Germany", "time_position": 1700000000,
         "last_contact": 1700000001, "longitude": 8.5, "latitude": 50.0, "baro_altitude": 11277.6,
         "on_ground": False, "velocity": 230.5, "true_track": 93.2, "vertical_rate": 0.0, "sensors": None,
         "geo_altitude": 11430.0, "squawk": "1000", "spi": False, "position_source": 0, "category": 0}


def _event(*values, offsets=None) -> dict:
    records = []
    for i, value in enumerate(values):
        record = {"topic": "aviation-data", "partition": 0, "offset": i if offsets is None else offsets[i],
                  "timestamp": 1700000000123, "timestampType": "CREATE_TIME", "key": "M2M2NDQ0", "headers": []}
        if value is not None:
            record["value"] = value if isinstance(value, str) else base64.b64encode(value).decode()
        records.append(record)
    return {"eventSource": "SelfManagedKafka", "records": {"aviation-data-0": records}}


@pytest.mark.parametrize("text", [
    json.dumps(STATE),                      # spaces after separators
    json.dumps(STATE, separators=(",", ":")),
    "  " + json.dumps(STATE) + "\n",        # whitespace around the document
])
def test_any_json_object_json_loads_accepts_is_read_the_same(text):
    # GIVEN one record whose value json.loads would accept
    # WHEN the event is read
    [record] = read_event(_event(text.encode()))
    # THEN the state is exactly what json.loads gives, with no error
    assert record.error is None and record.state == json.loads(text)


@pytest.mark.parametrize("raw, reason", [
    (b'{"icao24": "3c6444"} {"icao24": "x"}', "record value is not valid JSON: Extra data"),
    (b'{"icao24": "3c6444"', "record value is not valid JSON: Expecting"),
    ("\ufeff{}".encode(), "record value is not valid JSON: Unexpected UTF-8 BOM"),
    (b"[1, 2]", "record value is JSON list, not an object"),
    (b"\xff\xfe", "record value is not UTF-8"),
    ("eyJhIjoxfQ", "record value is not valid base64"),        # padding missing
    ("eyJhIjox fQ==", "record value is not valid base64"),     # a character outside the alphabet
])
def test_values_json_loads_or_base64_reject_keep_their_reason(raw, reason):
    [record] = read_event(_event(raw))
    assert record.state is None and record.error.startswith(reason)


def test_offsets_and_timestamps_that_are_not_plain_ints_are_still_converted():
    event = _event(json.dumps(STATE).encode(), json.dumps(STATE).encode(), json.dumps(STATE).encode(),
                   offsets=["17", True, 18.0])
    event["records"]["aviation-data-0"][0]["timestamp"] = "1700000000999"
    first, second, third = read_event(event)
    assert (first.offset, first.timestamp_ms, first.error) == (17, 1700000000999, None)
    assert (second.offset, second.error) == (-1, "record has no integer offset")  # a bool is not an offset
    assert (third.offset, third.timestamp_ms) == (18, 1700000000123)


@pytest.mark.parametrize("field, value, reason", [
    ("longitude", math.nan, "longitude is not finite"),
    ("latitude", math.inf, "latitude is not finite"),
    ("baro_altitude", -math.inf, "baro_altitude is not finite"),
    ("velocity", True, "velocity is not a number"),
    ("baro_altitude", "11000", "baro_altitude is not a number"),
    ("longitude", 10 ** 400, "value out of range"),  # an int no float can hold, as before
    ("callsign", 42, "callsign is not a string"),
])
def test_number_and_text_shortcuts_reject_what_the_general_checks_reject(field, value, reason):
    with pytest.raises(InvalidState, match=reason):
        evaluate({**STATE, field: value})


def test_plain_ints_and_floats_convert_as_before():
    notification, _ = evaluate({**STATE, "longitude": 8, "baro_altitude": 11000})
    assert notification["longitude"] == 8 and notification["altitude_feet"] == 36089
    assert notification["callsign"] == "DLH9LF"


def test_sns_body_encoded_once_is_byte_for_byte_what_botocore_sends():
    # GIVEN the parameters botocore builds for a PublishBatch with a non-ASCII message
    params = {"Action": "PublishBatch", "Version": "2010-03-31", "TopicArn": "arn:aws:sns:us-east-1:1:t",
              "PublishBatchRequestEntries.member.1.Message": '{"callsign":"ÄB C&D=1+2"}',
              "PublishBatchRequestEntries.member.1.Id": "0"}
    expected = AWSRequest(method="POST", url="https://sns", data=dict(params)).body
    # WHEN the function's hook encodes it before signing
    request = AWSRequest(method="POST", url="https://sns", data=dict(params))
    flight_handler._encode_form_once(request)
    # THEN the body sent is the same bytes, and it decodes back to the same fields
    assert request.body == expected
    assert dict(parse_qsl(request.body.decode())) == params


def test_function_sns_client_publishes_through_the_hook(aws_credentials):
    with mock_aws():
        # GIVEN the function's own SNS client (validation off, body encoded once) and a raw subscriber
        clients = aws_resources.AwsClients()
        sqs = clients.sqs
        topic = clients.sns.create_topic(Name="FlightNotifications")["TopicArn"]
        queue = aws_resources.subscribe_queue(topic, "q", clients)["queue_url"]
        client = flight_handler._client("sns", FunctionSettings(sns_topic_arn=topic))
        # WHEN it publishes a batch with non-ASCII text and message attributes
        body = '{"callsign":"ÄB C&D=1+2"}'
        response = client.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": "0", "Message": body, "MessageAttributes": {
                "origin_country": {"DataType": "String", "StringValue": "Côte d'Ivoire"},
                "kafka_timestamp_ms": {"DataType": "Number", "StringValue": "1700000000123"}}}])
        # THEN the subscriber gets the message and its attributes unchanged
        assert [e["Id"] for e in response["Successful"]] == ["0"] and not response.get("Failed")
        [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
        assert message["Body"] == body
        assert message["MessageAttributes"]["origin_country"]["StringValue"] == "Côte d'Ivoire"
        assert message["MessageAttributes"]["kafka_timestamp_ms"]["StringValue"] == "1700000000123"
