"""The handler end to end under moto: events in, SNS notifications out (seen through a filtered SQS
subscriber), the response the trigger relies on, metrics, logs and configuration errors."""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

import flight_handler
from flight_settings import FunctionConfigError, FunctionSettings
from pipeline_common.logs import JsonFormatter, install_json_logging
from saved_events import load_event

ROOT = Path(__file__).resolve().parents[2]
COUNTRIES = ["United States", "Germany", "United Kingdom", "France"]



class Aws:
    """moto clients, the topic, and a demo queue subscribed with a filter policy on origin_country."""

    def __init__(self):
        self.sns = boto3.client("sns", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        self.topic_arn = self.sns.create_topic(Name="FlightNotifications")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="flight-notifications-demo")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={
            "FilterPolicy": json.dumps({"origin_country": COUNTRIES}), "RawMessageDelivery": "true"})

    def received(self) -> list[dict]:
        """Everything the subscriber got: body parsed, plus its message attributes."""
        out = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                MessageAttributeNames=["All"]).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append({"body": json.loads(message["Body"]),
                            "attributes": {k: v.get("StringValue") for k, v in
                                           message.get("MessageAttributes", {}).items()}})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def published_metric(self, name: str = "Published", namespace: str = "FlightPipeline") -> float:
        from datetime import datetime, timedelta, timezone
        now = datetime.now(timezone.utc)
        points = self.cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName=name, Dimensions=[{"Name": "FunctionName", "Value": "flight-processor"}],
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1), Period=60,
            Statistics=["Sum"])["Datapoints"]
        return sum(p["Sum"] for p in points)


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        env = Aws()
        flight_handler.configure(FunctionSettings(sns_topic_arn=env.topic_arn, function_name="flight-processor",
                                           publish_backoff_s=0.0),
                          sns_client=env.sns, cloudwatch_client=env.cloudwatch)
        yield env
        flight_handler.reset()


def test_esm_batch_publishes_airborne_flights_and_reports_the_rest(aws):
    # GIVEN a self-managed Kafka ESM batch over two partitions: 5 airborne flights (one from Spain),
    # one on the ground with an altitude, one with negative altitude, a tombstone and malformed JSON
    event = load_event("esm_flights_self_managed.json")
    # WHEN the function is invoked
    result = flight_handler.lambda_handler(event, None)
    # THEN the counts and the failures are exactly what the trigger needs
    assert {k: result[k] for k in ("received", "in_air", "published", "filtered", "failed")} == {
        "received": 9, "in_air": 5, "published": 5, "filtered": 2, "failed": 2}
    assert result["batchItemFailures"] == [{"itemIdentifier": {"partition": "aviation-data-1", "offset": 7}},
                                           {"itemIdentifier": {"partition": "aviation-data-1", "offset": 8}}]
    reasons = {r["offset"]: r for r in result["failureReasons"]}
    assert reasons[7]["partition"] == "aviation-data-1"
    assert reasons[7]["reason"] == "record value is null (a tombstone): there is no state to process"
    assert reasons[8]["reason"].startswith("record value is not valid JSON")
    # AND the subscriber (United States, Germany, United Kingdom, France) gets four notifications, not Spain's
    received = {m["body"]["icao24"]: m for m in aws.received()}
    assert sorted(received) == ["394a0b", "3c6444", "400def", "a00001"]
    assert received["3c6444"]["body"] == {
        "icao24": "3c6444", "callsign": "DLH9LF", "origin_country": "Germany",
        "time_position": "2024-08-01T12:34:56Z", "longitude": 8.57123, "latitude": 50.03321,
        "altitude_feet": 37000, "velocity_knots": 448}
    assert received["3c6444"]["attributes"] == {"origin_country": "Germany", "kafka_timestamp_ms": "1722515698500"}
    assert received["a00001"]["body"]["time_position"] == "2024-08-01T12:34:57Z"  # last_contact fallback
    assert received["394a0b"]["body"]["callsign"] is None                          # "" -> null, no Kafka key
    assert received["400def"]["body"]["altitude_feet"] == 16404                    # geometric altitude
    assert received["400def"]["body"]["velocity_knots"] is None


@pytest.mark.parametrize("name", ["aws_kafka_msk.json", "aws_kafka_self_managed.json"])
def test_saved_aws_events_fail_their_non_json_record_with_a_reason(aws, name):
    result = flight_handler.lambda_handler(load_event(name), None)
    assert result["received"] == 1 and result["failed"] == 1 and result["published"] == 0
    assert result["batchItemFailures"] == [{"itemIdentifier": {"partition": "mytopic-0", "offset": 15}}]
    assert result["failureReasons"][0]["reason"].startswith("record value is not valid JSON")
    assert aws.received() == []


def test_raw_state_as_the_event_itself_is_published(aws):
    result = flight_handler.lambda_handler(load_event("raw_state.json"), None)
    assert (result["published"], result["batchItemFailures"], result["failureReasons"]) == (1, [], [])
    [message] = aws.received()
    assert message["body"]["callsign"] == "DLH9LF"
    assert message["attributes"] == {"origin_country": "Germany"}  # no Kafka timestamp for a raw state


def test_the_aircraft_category_travels_as_a_message_attribute_not_in_the_body(aws):
    # GIVEN states of a heavy (6), a rotorcraft (8), one without a category and one with a bogus value
    good = load_event("raw_state.json")
    states = [{**good, "icao24": "3c6444", "category": 6}, {**good, "icao24": "3c6445", "category": 8},
              {**good, "icao24": "3c6446", "category": None}, {**good, "icao24": "3c6447", "category": 99}]
    result = flight_handler.lambda_handler(states, None)
    assert result["published"] == 4
    received = {m["body"]["icao24"]: m for m in aws.received()}
    # THEN subscribers can filter on the category attribute; the body is still exactly the eight fields
    assert received["3c6444"]["attributes"] == {"origin_country": "Germany", "category": "6"}
    assert received["3c6445"]["attributes"]["category"] == "8"
    assert "category" not in received["3c6446"]["attributes"] and "category" not in received["3c6447"]["attributes"]
    assert all(list(m["body"]) == ["icao24", "callsign", "origin_country", "time_position", "longitude",
                                   "latitude", "altitude_feet", "velocity_knots"] for m in received.values())


def test_list_of_raw_states_reports_failures_by_index(aws):
    good = load_event("raw_state.json")
    states = [good, {**good, "on_ground": True}, {**good, "latitude": float("nan")}]
    result = flight_handler.lambda_handler(states, None)
    assert (result["published"], result["filtered"], result["failed"]) == (1, 1, 1)
    assert result["batchItemFailures"] == [{"itemIdentifier": {"partition": "raw-0", "offset": 2}}]
    assert result["failureReasons"][0]["reason"] == "invalid state: latitude is not finite: nan"


def test_one_putmetricdata_per_invocation_with_the_counts(aws):
    calls = []
    aws.cloudwatch.meta.events.register("provide-client-params.cloudwatch.PutMetricData",
                                        lambda params, **kw: calls.append(params))
    flight_handler.lambda_handler(load_event("esm_flights_self_managed.json"), None)
    flight_handler.lambda_handler(load_event("raw_state.json"), None)
    assert len(calls) == 2
    assert aws.published_metric("Published") == 6
    assert aws.published_metric("Received") == 10
    assert aws.published_metric("InAir") == 6
    assert aws.published_metric("Failed") == 2


def test_a_metrics_failure_is_logged_and_does_not_fail_the_invocation(aws, caplog):
    broken = mock.Mock()
    broken.put_metric_data.side_effect = EndpointConnectionError(endpoint_url="http://nowhere")
    flight_handler.configure(FunctionSettings(sns_topic_arn=aws.topic_arn), sns_client=aws.sns,
                             cloudwatch_client=broken)
    result = flight_handler.lambda_handler(load_event("raw_state.json"), None)
    assert result["published"] == 1 and result["failed"] == 0
    assert any("could not put metrics" in r.getMessage() for r in caplog.records)


def test_records_that_cannot_be_published_are_failures_with_the_reason(aws):
    # GIVEN a topic ARN that does not exist
    flight_handler.configure(FunctionSettings(sns_topic_arn=aws.topic_arn + "-gone", publish_backoff_s=0.0),
                      sns_client=aws.sns, cloudwatch_client=aws.cloudwatch)
    result = flight_handler.lambda_handler(load_event("esm_flights_self_managed.json"), None)
    # THEN every airborne record is reported, next to the two unreadable ones
    assert (result["in_air"], result["published"], result["failed"]) == (5, 0, 7)
    publish_failures = [r for r in result["failureReasons"] if r["reason"].startswith("publish failed")]
    assert {(r["partition"], r["offset"]) for r in publish_failures} == {
        ("aviation-data-0", 100), ("aviation-data-0", 102), ("aviation-data-0", 103), ("aviation-data-1", 10),
        ("aviation-data-1", 11)}
    assert "NotFound" in publish_failures[0]["reason"]


def test_large_batch_goes_out_in_publishbatch_calls_of_ten(aws):
    calls = []
    aws.sns.meta.events.register("provide-client-params.sns.PublishBatch",
                                 lambda params, **kw: calls.append(len(params["PublishBatchRequestEntries"])))
    state = load_event("raw_state.json")
    records = [{"topic": "aviation-data", "partition": 0, "offset": i, "timestamp": 1, "timestampType": "CREATE_TIME",
                "value": base64.b64encode(json.dumps({**state, "icao24": f"{i:06x}"}).encode()).decode(),
                "headers": []} for i in range(95)]
    result = flight_handler.lambda_handler({"eventSource": "aws:kafka", "records": {"aviation-data-0": records}}, None)
    assert result["published"] == 95 and result["failed"] == 0
    assert sorted(calls) == [5] + [10] * 9


def test_failed_records_are_logged_with_topic_partition_offset(aws, caplog):
    caplog.set_level(logging.INFO)
    flight_handler.lambda_handler(load_event("esm_flights_self_managed.json"), None)
    failed = [r for r in caplog.records if r.getMessage().startswith("record failed")]
    assert [(r.topic, r.partition, r.offset) for r in failed] == [
        ("aviation-data", "aviation-data-1", 7), ("aviation-data", "aviation-data-1", 8)]
    summary = [r for r in caplog.records if r.getMessage().startswith("processed 9 records")]
    assert summary and summary[0].published == 5


def test_configuration_comes_from_the_environment_at_first_invocation(aws_credentials, monkeypatch):
    with mock_aws():
        env = Aws()
        flight_handler.reset()
        monkeypatch.setenv("SNS_TOPIC_ARN", env.topic_arn)
        monkeypatch.setenv("METRICS_NAMESPACE", "FlightPipelineTest")
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "flight-processor")
        try:
            result = flight_handler.lambda_handler(load_event("raw_state.json"), None)
            assert result["published"] == 1 and len(env.received()) == 1
            assert env.published_metric(namespace="FlightPipelineTest") == 1
        finally:
            flight_handler.reset()


@pytest.mark.parametrize("env, message", [
    ({}, "SNS_TOPIC_ARN is required but not set"),
    ({"SNS_TOPIC_ARN": "FlightNotifications"}, "SNS_TOPIC_ARN='FlightNotifications' is not an SNS topic ARN"),
    ({"PUBLISH_CONCURRENCY": "lots"}, "PUBLISH_CONCURRENCY='lots' is not an integer"),
    ({"PUBLISH_CONCURRENCY": "0"}, "PUBLISH_CONCURRENCY=0 is outside 1..64"),
    ({"METRICS_ENABLED": "maybe"}, "METRICS_ENABLED='maybe' is not a boolean"),
    ({"METRICS_NAMESPACE": "AWS/SNS"}, "must not start with 'AWS/'"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL='CHATTY' is not one of"),
])
def test_bad_configuration_is_rejected_naming_the_variable(env, message):
    full = {"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:FlightNotifications", **env} if env else env
    with pytest.raises(FunctionConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        FunctionSettings.from_env(full)


def test_values_passed_in_code_win_over_the_environment():
    settings = FunctionSettings.from_env({"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:A",
                                          "PUBLISH_CONCURRENCY": "4"}, publish_concurrency=16)
    assert settings.publish_concurrency == 16 and settings.metrics_namespace == "FlightPipeline"


def test_cold_start_in_a_lambda_runtime_fails_fast_on_missing_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SNS_TOPIC_ARN"}
    env.update(LAMBDA_TASK_ROOT=str(tmp_path), PYTHONPATH=str(ROOT / "src" / "lambda"))
    proc = subprocess.run([sys.executable, "-c", "import flight_handler"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "SNS_TOPIC_ARN is required but not set" in proc.stderr


def test_logs_are_json_lines_with_extra_fields():
    logger = logging.getLogger("test_flight_handler.json")
    logger.propagate = False
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    install_json_logging("INFO", root=logger)
    try:
        logger.warning("record failed: %s", "boom", extra={"topic": "t", "partition": "t-0", "offset": 3})
    finally:
        logger.handlers.clear()
    doc = json.loads(stream.getvalue())
    assert doc["msg"] == "record failed: boom" and doc["level"] == "WARNING"
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("t", "t-0", 3)
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
