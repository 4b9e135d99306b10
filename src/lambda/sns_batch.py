"""Publishes many SNS messages with PublishBatch: chunks, concurrency, retries with backoff.

SNS limits a PublishBatch call to 10 entries and 262,144 bytes of payload in total (messages plus
message attributes), so entries are packed greedily in order under both limits. Chunks are
independent, so they go out concurrently on a thread pool (boto3 clients are thread-safe).

An entry that fails is retried, after the project's one retry wait (pipeline_common.backoff:
exponential, equal jitter, capped at MAX_BACKOFF_S), when the failure is on AWS's side (SenderFault
false) or is throttling; a sender fault (e.g. an invalid attribute) is final at once. Whatever is
still failing after the last attempt is returned with its reason.
"""
from __future__ import annotations

import logging
import random
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.backoff import backoff_delay

logger = logging.getLogger(__name__)

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 262_144
MAX_BACKOFF_S = 2.0

# Error codes worth another try even when AWS marks them as the sender's fault.
_THROTTLING = {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
               "TooManyRequestsException", "KMSThrottling", "KMSThrottlingException"}
_SERVER_SIDE = {"InternalError", "InternalFailure", "ServiceUnavailable", "InternalErrorException",
                "KMSUnavailable", "RequestTimeout", "RequestTimeoutException"}


@dataclass(slots=True)
class Notification:
    """One SNS message; ``ref`` ties it back to the input record it came from."""
    ref: int
    message: str
    attributes: dict
    extra: dict | None = None  # more entry fields, e.g. MessageGroupId/MessageDeduplicationId for FIFO

    def size(self) -> int:
        """Bytes SNS counts against the payload limit: the message plus each attribute's name, type, value."""
        total = len(self.message.encode("utf-8"))
        for name, attr in self.attributes.items():
            total += len(name.encode("utf-8")) + len(attr["DataType"].encode("utf-8"))
            total += len(attr.get("StringValue", "").encode("utf-8"))
        return total


@dataclass(frozen=True)
class PublishFailure:
    ref: int
    reason: str


def chunk_notifications(items: Sequence[Notification], max_entries: int = MAX_BATCH_ENTRIES,
                        max_bytes: int = MAX_BATCH_BYTES) -> tuple[list[list[Notification]], list[PublishFailure]]:
    """Greedy packing in input order; an entry that alone exceeds max_bytes cannot be sent at all."""
    chunks: list[list[Notification]] = []
    too_big: list[PublishFailure] = []
    current: list[Notification] = []
    current_bytes = 0
    for item in items:
        size = item.size()
        if size > max_bytes:
            too_big.append(PublishFailure(item.ref, f"message is {size} bytes, over SNS's {max_bytes}-byte limit"))
            continue
        if current and (len(current) == max_entries or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks, too_big


def _retryable(code: str | None, sender_fault: bool) -> bool:
    return code in _THROTTLING or code in _SERVER_SIDE or not sender_fault


class SnsBatchPublisher:
    def __init__(self, client, topic_arn: str, *, executor: Executor | None = None, max_attempts: int = 4,
                 backoff_s: float = 0.05, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random):
        self._client = client
        self._topic_arn = topic_arn
        self._executor = executor
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._jitter = jitter

    def publish(self, items: Sequence[Notification]) -> list[PublishFailure]:
        """Publish everything; return the entries that could not be published, with reasons."""
        chunks, failures = chunk_notifications(items)
        if len(chunks) <= 1 or self._executor is None:
            for chunk in chunks:
                failures.extend(self._publish_chunk(chunk))
            return failures
        for chunk_failures in self._executor.map(self._publish_chunk, chunks):
            failures.extend(chunk_failures)
        return failures

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self._backoff_s, MAX_BACKOFF_S, rand=self._jitter)

    def _publish_chunk(self, chunk: list[Notification]) -> list[PublishFailure]:
        pending = {str(i): item for i, item in enumerate(chunk)}
        reasons: dict[str, str] = {}
        final: list[PublishFailure] = []
        for attempt in range(1, self._max_attempts + 1):
            entries = [{"Id": entry_id, "Message": item.message, "MessageAttributes": item.attributes,
                        **(item.extra or {})} for entry_id, item in pending.items()]
            try:
                response = self._client.publish_batch(TopicArn=self._topic_arn, PublishBatchRequestEntries=entries)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                reason = f"PublishBatch failed: {code}: {error.get('Message')}"
                if not (code in _THROTTLING or code in _SERVER_SIDE or status >= 500):
                    final.extend(PublishFailure(item.ref, reason) for item in pending.values())
                    return final
                reasons.update({entry_id: reason for entry_id in pending})
            except BotoCoreError as exc:  # connection reset, read timeout, endpoint unreachable
                reasons.update({entry_id: f"PublishBatch failed: {exc}" for entry_id in pending})
            else:
                for ok in response.get("Successful", []):
                    pending.pop(ok.get("Id"), None)
                for failed in response.get("Failed", []):
                    entry_id = failed.get("Id")
                    if entry_id not in pending:
                        continue
                    reason = f"{failed.get('Code')}: {failed.get('Message')}"
                    if _retryable(failed.get("Code"), bool(failed.get("SenderFault"))):
                        reasons[entry_id] = reason
                    else:
                        final.append(PublishFailure(pending.pop(entry_id).ref, reason))
                # An Id in neither list would be an SNS bug; retrying it is the safe reading.
                for entry_id in pending:
                    reasons.setdefault(entry_id, "missing from the PublishBatch response")
            if not pending:
                return final
            if attempt < self._max_attempts:
                logger.warning("retrying %d SNS entries (attempt %d of %d): %s", len(pending), attempt + 1,
                               self._max_attempts, reasons.get(next(iter(pending)), ""))
                self._sleep(self._delay(attempt))
        final.extend(PublishFailure(item.ref, f"{reasons.get(entry_id, 'unknown error')} "
                                              f"(gave up after {self._max_attempts} attempts)")
                     for entry_id, item in pending.items())
        return final
