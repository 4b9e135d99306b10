"""On-failure destinations: the dead-letter Kafka topic (always) and an SQS queue (optional).

Each failed record becomes one JSON document modelled on AWS's "Record format for a Kafka
destination" (docs: kafka-on-failure-destination): requestContext, responseContext, version,
timestamp, KafkaBatchInfo{batchSize: 1, recordInfo} and payload (the ESM event holding just that
record, so its original topic/partition/offset/timestamp/key/value travel base64-encoded as the
function saw them). AWS gives no reason text; this trigger adds `errorContext` with the reason
(the function's failureReasons entry when it sent one), the error type/message and the attempts.

Conditions: "RetryAttemptsExhausted" and "MaximumPayloadSizeExceeded" as AWS lists them for
Kafka (the Kafka-topic example in the docs shows "RetriesExhausted"; one spelling is used for
every destination here), plus "RecordAgeExceeded" for MaximumRecordAgeInSeconds, which AWS's
Kafka page does not name.

The Kafka message keeps the original record's key, so it lands on the same DLQ partition as
its siblings (AWS does the same; a keyless record is spread by the producer).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

logger = logging.getLogger(__name__)

RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
PAYLOAD_TOO_LARGE = "MaximumPayloadSizeExceeded"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"

# SNS/SQS destinations on AWS drop the payload above 256 KB; SQS accepts this much per message.
SQS_MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class FailedRecord:
    """One record that will not be retried any more, and why."""
    record: object                      # a kafka-python ConsumerRecord
    condition: str
    reason: str
    attempts: int                       # invocations that carried this record (approximateInvokeCount)
    function_error: str | None = None   # "Unhandled" | "Handled" | None (reported item failure, never invoked)
    error_type: str | None = None
    error_message: str | None = None
    status_code: int | None = None
    executed_version: str | None = None


def iso_ms(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(epoch_s * 1000) % 1000:03d}Z"


def build_on_failure_record(failed: FailedRecord, builder, function_arn: str, now: float | None = None) -> dict:
    """The AWS-shaped on-failure document for one record (`builder` is the trigger's EsmEventBuilder)."""
    rec = failed.record
    payload = builder.build_dict([rec])
    invoked = failed.function_error is not None or failed.status_code is not None
    batch_info = {"batchSize": 1}
    if builder.event_source_arn:
        batch_info["eventSourceArn"] = builder.event_source_arn
    batch_info.update({
        "bootstrapServers": builder.bootstrap_servers,
        "payloadSize": builder.event_size([rec]),
        "recordInfo": {"offset": str(rec.offset),
                       "timestamp": iso_ms(rec.timestamp / 1000) if rec.timestamp >= 0 else None},
    })
    return {
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": function_arn,
                           "condition": failed.condition, "approximateInvokeCount": failed.attempts},
        "responseContext": ({"statusCode": failed.status_code, "executedVersion": failed.executed_version,
                             "functionError": failed.function_error} if invoked else None),
        "version": "1.0",
        "timestamp": iso_ms(time.time() if now is None else now),
        "KafkaBatchInfo": batch_info,
        "payload": payload,
        "errorContext": {"reason": failed.reason, "errorType": failed.error_type,
                         "errorMessage": failed.error_message, "attempts": failed.attempts,
                         "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                         "timestamp": rec.timestamp},
    }


class KafkaDestination:
    """Writes failure documents to the dead-letter topic; send() returns only once the broker acked."""

    name = "kafka"

    def __init__(self, topic: str, kafka_settings, producer=None) -> None:
        self.topic = topic
        self._settings = kafka_settings
        self._producer = producer

    def _get_producer(self):
        if self._producer is None:
            from kafka import KafkaProducer
            # acks=all: a dead-lettered record is committed past, so it must not be lost.
            self._producer = KafkaProducer(acks="all", linger_ms=5, retries=5,
                                           max_request_size=16 * 1024 * 1024, **self._settings.client_kwargs())
        return self._producer

    def send(self, docs: Sequence[tuple[bytes | None, dict]]) -> None:
        from kafka.errors import MessageSizeTooLargeError

        producer = self._get_producer()
        futures = [(key, doc, producer.send(self.topic, key=key, value=_dumps(doc))) for key, doc in docs]
        producer.flush()
        for key, doc, future in futures:
            try:
                future.get(timeout=30)
            except MessageSizeTooLargeError:
                # The broker refuses messages above its max.message.bytes: keep the metadata and
                # the coordinates of the record (it stays readable in the source topic).
                slim = dict(doc, payload=None, payloadDropped=True)
                producer.send(self.topic, key=key, value=_dumps(slim)).get(timeout=30)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)


class SqsDestination:
    """Sends failure documents to an SQS queue (TRIGGER_DLQ_SQS_URL), ten per request."""

    name = "sqs"

    def __init__(self, queue_url: str, client=None) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, docs: Sequence[tuple[bytes | None, dict]]) -> None:
        if self._client is None:
            import boto3
            self._client = boto3.client("sqs")
        bodies = []
        for _key, doc in docs:
            body = _dumps(doc)
            if len(body) > SQS_MAX_MESSAGE_BYTES:
                body = _dumps(dict(doc, payload=None, payloadDropped=True))
            bodies.append(body.decode("utf-8"))
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
            resp = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if resp.get("Failed"):
                raise RuntimeError(f"SQS refused {len(resp['Failed'])} dead-letter message(s): {resp['Failed'][0]}")

    def close(self) -> None:
        pass


def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
