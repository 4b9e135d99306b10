"""Dead-letter documents: AWS's on-failure record for Kafka, plus the reason; Kafka and SQS destinations."""
from __future__ import annotations

import base64
import json
import re
import threading

import boto3
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import MessageSizeTooLargeError
from moto import mock_aws

from infra.deploy import aws_resources
from trigger.batch_abort import BatchAborted
from trigger.esm_event import EsmEventBuilder
from trigger.mapping import TriggerConfig
from trigger.on_failure import (PAYLOAD_TOO_LARGE, RETRIES_EXHAUSTED, FailedRecord, KafkaDestination,
                                OnFailureDelivery, S3Destination, SnsDestination, SqsDestination,
                                build_on_failure_record, destination_from_uri, destinations_for)

VALUE = b'{"icao24": "3c6444", "callsign": "DLH9LF"}'
RECORD = ConsumerRecord("aviation-data", 2, -1, 4711, 1_700_000_000_123, 0, b"3c6444", VALUE, [], None, 6,
                        len(VALUE), -1)
BUILDER = EsmEventBuilder("localhost:9092")


def failed(**kw):
    base = dict(record=RECORD, condition=RETRIES_EXHAUSTED, reason="SNS publish failed: throttled", attempts=3,
                function_error=None, error_type="BatchItemFailure", status_code=200, executed_version="$LATEST")
    base.update(kw)
    return FailedRecord(**base)


def test_the_document_has_aws_on_failure_fields_and_the_original_record():
    doc = build_on_failure_record(failed(), BUILDER, "flight-processor", now=1_700_000_010.5)
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["requestContext"]["functionArn"] == "flight-processor"
    assert doc["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None}
    assert doc["version"] == "1.0" and doc["timestamp"] == "2023-11-14T22:13:30.500Z"
    info = doc["KafkaBatchInfo"]
    assert info["batchSize"] == 1 and info["bootstrapServers"] == "localhost:9092"
    assert info["recordInfo"] == {"offset": "4711", "timestamp": "2023-11-14T22:13:20.123Z"}
    assert info["payloadSize"] == len(BUILDER.build([RECORD]))
    # the payload is the ESM event the function saw for this record: topic/partition/offset/timestamp/key/value
    [original] = doc["payload"]["records"]["aviation-data-2"]
    assert original["offset"] == 4711 and original["timestamp"] == 1_700_000_000_123
    assert base64.b64decode(original["key"]) == b"3c6444" and base64.b64decode(original["value"]) == VALUE
    assert doc["errorContext"]["reason"] == "SNS publish failed: throttled"
    assert doc["errorContext"]["attempts"] == 3 and doc["errorContext"]["partition"] == 2


def test_a_record_never_invoked_has_no_response_context():
    doc = build_on_failure_record(failed(condition=PAYLOAD_TOO_LARGE, attempts=0, status_code=None,
                                         executed_version=None, error_type=None), BUILDER, "fn")
    assert doc["responseContext"] is None and doc["requestContext"]["condition"] == "MaximumPayloadSizeExceeded"


class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def get(self, timeout=None):
        if self.error:
            raise self.error


class FakeProducer:
    def __init__(self, refuse_big=False):
        self.sent = []
        self.refuse_big = refuse_big

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, json.loads(value)))
        too_big = self.refuse_big and json.loads(value).get("payload") is not None
        return FakeFuture(MessageSizeTooLargeError("too big") if too_big else None)

    def flush(self):
        pass


def test_kafka_destination_keeps_the_original_key():
    producer = FakeProducer()
    doc = build_on_failure_record(failed(), BUILDER, "fn")
    KafkaDestination("aviation-data-dlq", None, producer=producer).send([(b"3c6444", doc)])
    [(topic, key, value)] = producer.sent
    assert (topic, key) == ("aviation-data-dlq", b"3c6444") and value["errorContext"]["offset"] == 4711


def test_kafka_destination_drops_the_payload_if_the_broker_refuses_the_size():
    producer = FakeProducer(refuse_big=True)
    KafkaDestination("dlq", None, producer=producer).send([(b"k", build_on_failure_record(failed(), BUILDER, "fn"))])
    assert producer.sent[-1][2]["payloadDropped"] is True and producer.sent[-1][2]["KafkaBatchInfo"]["recordInfo"]


@pytest.fixture
def sqs(aws_credentials):
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        yield client, client.create_queue(QueueName="flight-dlq")["QueueUrl"]


def test_sqs_destination_delivers_every_document(sqs):
    client, url = sqs
    docs = [(b"k", build_on_failure_record(failed(reason=f"reason {i}"), BUILDER, "fn")) for i in range(13)]
    SqsDestination(url, client=client).send(docs)
    bodies = []
    while True:
        msgs = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        bodies += [json.loads(m["Body"]) for m in msgs]
        client.delete_message_batch(QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                                           for m in msgs])
    assert sorted(b["errorContext"]["reason"] for b in bodies) == sorted(f"reason {i}" for i in range(13))
    assert bodies[0]["payload"]["records"]["aviation-data-2"][0]["offset"] == 4711


class FlakyDestination:
    name = "flaky"

    def __init__(self, failures):
        self.failures = failures
        self.delivered = []

    def send(self, docs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.delivered += docs

    def close(self):
        pass


def delivery_to(destinations):
    return OnFailureDelivery(destinations, BUILDER, "flight-processor", base_delay_s=0.001, max_delay_s=0.002)


def test_an_unavailable_destination_is_retried_until_the_record_is_delivered():
    dest = FlakyDestination(failures=3)
    delivery_to([dest]).deliver([failed()], threading.Event())
    assert len(dest.delivered) == 1 and dest.delivered[0][0] == b"3c6444"


def test_a_destination_that_never_recovers_leaves_the_batch_unfinished_on_shutdown():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BatchAborted):
        delivery_to([FlakyDestination(failures=10**9)]).deliver([failed()], cancel)


# --- SNS and S3 destinations, chosen by DestinationConfig.OnFailure.Destination ----------------------------

def test_the_destination_is_chosen_by_its_uri_or_arn():
    cfg = TriggerConfig(topic="aviation-data", dlq_topic=None, group_id="g")
    assert destination_from_uri("kafka://aviation-data-dlq", cfg).topic == "aviation-data-dlq"
    sqs_dest = destination_from_uri("arn:aws:sqs:us-east-1:000000000000:flight-dlq", cfg)
    assert isinstance(sqs_dest, SqsDestination) and sqs_dest.queue_name == "flight-dlq"
    assert isinstance(destination_from_uri("arn:aws:sns:us-east-1:000000000000:esm-failures", cfg), SnsDestination)
    s3_dest = destination_from_uri("arn:aws:s3:::flight-failures", cfg)
    assert isinstance(s3_dest, S3Destination) and s3_dest.bucket == "flight-failures"
    for bad in ("kafka://aviation-data", "kafka://", "arn:aws:dynamodb:us-east-1:000000000000:table/x", "dlq"):
        with pytest.raises(ValueError):
            destination_from_uri(bad, cfg)


def test_the_on_failure_destination_comes_before_the_legacy_ones_and_is_not_doubled():
    cfg = TriggerConfig(topic="t", group_id="g", on_failure_destination="kafka://aviation-data-dlq")
    assert [d.topic for d in destinations_for(cfg)] == ["aviation-data-dlq"]
    cfg = TriggerConfig(topic="t", group_id="g", dlq_topic=None, on_failure_destination="arn:aws:sns:us-east-1:1:x",
                        dlq_sqs_url="http://q")
    assert [d.name for d in destinations_for(cfg)] == ["sns", "sqs"]
    assert cfg.effective_retry_attempts == 10  # infinite retries are capped once a destination exists


def test_sns_destination_publishes_the_document_a_subscriber_receives(aws_credentials):
    with mock_aws():
        clients = aws_resources.AwsClients()
        sns, sqs_client = clients.sns, clients.sqs
        topic = sns.create_topic(Name="esm-failures")["TopicArn"]
        url = aws_resources.subscribe_queue(topic, "sub", clients)["queue_url"]
        SnsDestination(topic, client=sns).send([(b"k", build_on_failure_record(failed(), BUILDER, "fn"))] * 12)
        bodies = []
        for _ in range(3):
            bodies += [json.loads(m["Body"]) for m in
                       sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
        assert len(bodies) == 12
        assert bodies[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert bodies[0]["KafkaBatchInfo"]["recordInfo"]["offset"] == "4711"


def test_s3_destination_writes_one_object_per_record_under_aws_layout(aws_credentials):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="flight-failures")
        S3Destination("flight-failures", "0f8fad5b-d9cb-469f-a165-70867728950e", client=s3).send(
            [(b"k", build_on_failure_record(failed(), BUILDER, "fn"))])
        [obj] = s3.list_objects_v2(Bucket="flight-failures")["Contents"]
        assert re.fullmatch(r"aws/lambda/0f8fad5b-d9cb-469f-a165-70867728950e/aviation-data-2/\d{4}/\d\d/\d\d/"
                            r"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d-[0-9a-f-]{36}", obj["Key"])
        doc = json.loads(s3.get_object(Bucket="flight-failures", Key=obj["Key"])["Body"].read())
        # S3 gets the whole invocation record: the metadata and the payload with the original record
        assert doc["payload"]["records"]["aviation-data-2"][0]["offset"] == 4711


def test_an_sqs_queue_arn_is_resolved_to_its_url_and_receives_the_document(sqs):
    client, url = sqs
    # GIVEN DestinationConfig.OnFailure.Destination as AWS takes it: the queue's ARN, not its URL
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    destination = destination_from_uri(arn, TriggerConfig(topic="aviation-data", dlq_topic=None, group_id="g"))
    destination._client = client
    destination.send([(b"k", build_on_failure_record(failed(), BUILDER, "fn"))])
    [message] = client.receive_message(QueueUrl=url)["Messages"]
    assert destination.queue_url == url and json.loads(message["Body"])["errorContext"]["offset"] == 4711
