"""On-failure destinations and the delivery to them: a Kafka topic, an SQS queue, an SNS topic, an S3 bucket.

A mapping's destination is chosen as on AWS by DestinationConfig.OnFailure.Destination
(`kafka://<topic>`, or an SQS queue / SNS topic / S3 bucket ARN; TRIGGER_ON_FAILURE_DESTINATION);
the older KAFKA_DLQ_TOPIC and TRIGGER_DLQ_SQS_URL settings still add a Kafka topic and a queue.

Each failed record becomes one JSON document modelled on AWS's "Record format for a Kafka
destination" (docs: kafka-on-failure-destination): requestContext, responseContext, version,
timestamp, KafkaBatchInfo{batchSize: 1, recordInfo} and payload (the ESM event holding just that
record, so its original topic/partition/offset/timestamp/key/value travel base64-encoded as the
function saw them). AWS gives no reason text; this trigger adds `errorContext` with the reason
(the function's failureReasons entry when it sent one), the error type/message and the attempts.

What each destination receives (docs: kafka-on-failure, "Capturing discarded batches"):
* Kafka topic: the document with the payload, one message per record, keyed by the original key.
* SQS queue and SNS topic: the document; AWS drops the payload when the message would exceed
  256 KB, and so does this trigger (`payloadDropped: true`).
* S3 bucket: "Lambda also sends the entire invocation record along with the metadata": one object
  per failed record, the document with its payload, under AWS's layout for stream sources with the
  partition in the shard's place: aws/lambda/<ESM-UUID>/<topic>-<partition>/YYYY/MM/DD/
  YYYY-MM-DDTHH.MM.SS-<random UUID>.

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
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from pipeline_common.backoff import backoff_delay

from .batch_abort import BatchAborted

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
    """Sends failure documents to an SQS queue (an ARN, or TRIGGER_DLQ_SQS_URL), ten per request."""

    name = "sqs"

    def __init__(self, queue_url: str | None, client=None, *, queue_name: str | None = None,
                 owner: str | None = None) -> None:
        self.queue_url = queue_url
        self.queue_name = queue_name  # from an ARN: the URL is looked up on first use
        self.owner = owner
        self._client = client

    def send(self, docs: Sequence[tuple[bytes | None, dict]]) -> None:
        if self._client is None:
            import boto3
            self._client = boto3.client("sqs")
        if self.queue_url is None:
            kwargs = {"QueueOwnerAWSAccountId": self.owner} if self.owner else {}
            self.queue_url = self._client.get_queue_url(QueueName=self.queue_name, **kwargs)["QueueUrl"]
        bodies = [_fit(doc, SQS_MAX_MESSAGE_BYTES) for _key, doc in docs]
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
            resp = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if resp.get("Failed"):
                raise RuntimeError(f"SQS refused {len(resp['Failed'])} dead-letter message(s): {resp['Failed'][0]}")

    def close(self) -> None:
        pass


class SnsDestination:
    """Publishes failure documents to an SNS topic (an `arn:aws:sns:` on-failure destination)."""

    name = "sns"

    def __init__(self, topic_arn: str, client=None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def send(self, docs: Sequence[tuple[bytes | None, dict]]) -> None:
        if self._client is None:
            import boto3
            self._client = boto3.client("sns")
        entries = [{"Id": str(i), "Message": _fit(doc, SQS_MAX_MESSAGE_BYTES)} for i, (_key, doc) in enumerate(docs)]
        for start in range(0, len(entries), 10):
            resp = self._client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries[start:start + 10])
            if resp.get("Failed"):
                raise RuntimeError(f"SNS refused {len(resp['Failed'])} dead-letter message(s): {resp['Failed'][0]}")

    def close(self) -> None:
        pass


class S3Destination:
    """Writes one object per failure document, payload included, under AWS's key layout (module docstring)."""

    name = "s3"

    def __init__(self, bucket: str, mapping_uuid: str, client=None) -> None:
        self.bucket = bucket
        self.mapping_uuid = mapping_uuid
        self._client = client

    def key_for(self, doc: dict, now: float | None = None) -> str:
        where = doc.get("errorContext") or {}
        stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
        return (f"aws/lambda/{self.mapping_uuid}/{where.get('topic')}-{where.get('partition')}/"
                f"{stamp:%Y/%m/%d}/{stamp:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}")

    def send(self, docs: Sequence[tuple[bytes | None, dict]]) -> None:
        if self._client is None:
            import boto3
            self._client = boto3.client("s3")
        for _key, doc in docs:
            self._client.put_object(Bucket=self.bucket, Key=self.key_for(doc), Body=_dumps(doc),
                                    ContentType="application/json")

    def close(self) -> None:
        pass


def destination_from_uri(uri: str, config) -> object:
    """The destination for DestinationConfig.OnFailure.Destination: kafka://topic or an SQS/SNS/S3 ARN
    (an SQS queue URL is accepted too). Raises ValueError naming what is wrong."""
    if uri.startswith("kafka://"):
        topic = uri[len("kafka://"):]
        if not topic or topic in config.topics:
            raise ValueError(f"{uri!r}: the on-failure topic must be named and differ from the source topic(s)")
        return KafkaDestination(topic, config.kafka)
    if uri.startswith(("http://", "https://")):
        return SqsDestination(uri)
    parts = uri.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        service, region, account, resource = parts[2], parts[3], parts[4], parts[5]
        if service == "sqs":
            return SqsDestination(None, queue_name=resource, owner=account or None)
        if service == "sns":
            return SnsDestination(uri)
        if service == "s3" and resource:
            return S3Destination(resource.split("/", 1)[0], config.mapping_uuid)
    raise ValueError(f"{uri!r} is not kafka://<topic> or an SQS queue, SNS topic or S3 bucket ARN")


def destinations_for(config) -> list:
    """Every on-failure destination of a mapping, from its settings."""
    found = []
    if config.on_failure_destination:
        found.append(destination_from_uri(config.on_failure_destination, config))
    if config.dlq_topic and not any(isinstance(d, KafkaDestination) and d.topic == config.dlq_topic for d in found):
        found.append(KafkaDestination(config.dlq_topic, config.kafka))
    if config.dlq_sqs_url:
        found.append(SqsDestination(config.dlq_sqs_url))
    return found


class OnFailureDelivery:
    """Sends records that will not be retried to every destination, retrying a destination that is down
    (the records are not committed until it succeeds). Runs in the invoke worker threads."""

    def __init__(self, destinations, builder, function_arn: str, base_delay_s: float, max_delay_s: float,
                 stats=None) -> None:
        self.destinations = list(destinations)
        self.builder = builder
        self.function_arn = function_arn
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.stats = stats

    def names(self) -> str:
        return ", ".join(_describe(d) for d in self.destinations)

    def deliver(self, failed: list[FailedRecord], cancel: threading.Event) -> None:
        if not self.destinations:
            # AWS without a destination: the records are discarded once retries are exhausted.
            logger.error("no on-failure destination configured: %d record(s) discarded", len(failed))
            if self.stats is not None:
                self.stats.add(dropped=len(failed))
            return
        docs = [(f.record.key, build_on_failure_record(f, self.builder, self.function_arn)) for f in failed]
        for destination in self.destinations:
            attempt = 0
            while True:
                try:
                    destination.send(docs)
                    break
                except Exception as exc:  # noqa: BLE001 - the records may not be committed until this succeeds
                    attempt += 1
                    delay = backoff_delay(attempt, self.base_delay_s, self.max_delay_s)
                    rec = failed[0].record
                    logger.error("on-failure destination %s failed (%s); retry in %.1fs", destination.name, exc,
                                 delay, extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset})
                    if cancel.wait(delay):
                        raise BatchAborted() from exc

    def close(self) -> None:
        for destination in self.destinations:
            try:
                destination.close()
            except Exception:  # noqa: BLE001
                logger.warning("closing on-failure destination %s failed", destination.name, exc_info=True)


def _describe(destination) -> str:
    target = (getattr(destination, "topic", None) or getattr(destination, "queue_url", None)
              or getattr(destination, "queue_name", None) or getattr(destination, "topic_arn", None)
              or getattr(destination, "bucket", None))
    return f"{destination.name}:{target}"


def _fit(doc: dict, limit: int) -> str:
    body = _dumps(doc)
    if len(body) > limit:
        body = _dumps(dict(doc, payload=None, payloadDropped=True))
    return body.decode("utf-8")


def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
