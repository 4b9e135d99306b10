"""Dead-letter documents: AWS's on-failure record for Kafka, plus the reason; Kafka and SQS destinations."""
from __future__ import annotations

import base64
import json
import threading

import boto3
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import MessageSizeTooLargeError
from moto import mock_aws

from trigger.batch_processor import BatchAborted
from trigger.esm_event import EsmEventBuilder
from trigger.invoker import InvokeResult
from trigger.mapping import TriggerConfig
from trigger.on_failure import (PAYLOAD_TOO_LARGE, RETRIES_EXHAUSTED, FailedRecord, KafkaDestination,
                                SqsDestination, build_on_failure_record)
from trigger.runner import Trigger

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


def trigger_with(destinations):
    cfg = TriggerConfig(retry_base_delay_s=0.001, retry_max_delay_s=0.002)
    return Trigger(cfg, invoker=lambda payload: InvokeResult("ok"), destinations=destinations, consumer=object())


def test_an_unavailable_destination_is_retried_until_the_record_is_delivered():
    dest = FlakyDestination(failures=3)
    trigger_with([dest])._deliver([failed()], threading.Event())
    assert len(dest.delivered) == 1 and dest.delivered[0][0] == b"3c6444"


def test_a_destination_that_never_recovers_leaves_the_batch_unfinished_on_shutdown():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BatchAborted):
        trigger_with([FlakyDestination(failures=10**9)])._deliver([failed()], cancel)
