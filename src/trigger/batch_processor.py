"""Takes one batch of one partition from "invoke" to "every record succeeded or was dead-lettered".

AWS semantics kept (docs: kafka-retry-configurations):
* MaximumRetryAttempts counts retries after the first invocation; -1 is infinite, except that
  AWS applies 10 when an on-failure destination is configured (TriggerConfig.effective_retry_attempts).
* MaximumRecordAgeInSeconds: a record older than that is not sent again; it is dead-lettered.
* BisectBatchOnFunctionError: a batch that ends in a function error is split in two and each half
  is retried on its own; as for Kinesis, the split itself does not use up a retry.
* ReportBatchItemFailures: {"batchItemFailures": [{"itemIdentifier": {"partition": "topic-N",
  "offset": 42}}]}: only those records are retried; an empty or null answer is success; an
  identifier that was not in the event fails the whole batch.

Choices where AWS is silent, or where this project needs a guarantee AWS does not spell out:
* Only function errors and reported item failures count toward MaximumRetryAttempts. Throttling,
  an unreachable endpoint, timeouts and other service-side refusals are not the records' fault:
  they are retried forever with capped backoff and never dead-letter a valid record.
* A record too large for the 6 MB invoke payload on its own is dead-lettered at once
  (condition MaximumPayloadSizeExceeded); a too-large batch is split.
* Retries wait with exponential backoff and jitter (base * 2^(n-1), capped, "equal jitter").
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from pipeline_common.backoff import backoff_delay

from .batch_abort import BatchAborted
from .esm_event import partition_key
from .invoker import FUNCTION_ERROR, TOO_LARGE, InvokeResult
from .on_failure import PAYLOAD_TOO_LARGE, RECORD_AGE_EXCEEDED, RETRIES_EXHAUSTED, FailedRecord

logger = logging.getLogger(__name__)

_LOGGED_PER_BATCH = 20  # dead-lettered records logged one by one per batch; the rest are summarised


@dataclass
class BatchOutcome:
    succeeded: int = 0
    dead_lettered: int = 0
    invocations: int = 0
    retries: int = 0


@dataclass(frozen=True)
class ItemFailures:
    keys: frozenset            # {(topic-partition, offset)} to retry
    reasons: dict              # {(topic-partition, offset): reason text from failureReasons}
    problem: str | None = None  # set when the answer is invalid: the whole batch failed


def _loads(payload: bytes):
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None


def parse_function_error(payload: bytes) -> tuple[str | None, str]:
    """(errorType, errorMessage) from a FunctionError answer."""
    doc = _loads(payload)
    if isinstance(doc, dict):
        return doc.get("errorType"), str(doc.get("errorMessage", ""))[:1000]
    return None, payload[:1000].decode("utf-8", "replace")


def parse_item_failures(payload: bytes, records: Sequence) -> ItemFailures:
    """The records a successful invocation reported as failed (ReportBatchItemFailures)."""
    doc = _loads(payload)
    items = doc.get("batchItemFailures") if isinstance(doc, dict) else None
    if not items:
        return ItemFailures(frozenset(), {})
    sent = {(partition_key(r.topic, r.partition), r.offset) for r in records}
    keys = set()
    for item in items if isinstance(items, list) else [items]:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        key = (ident.get("partition"), ident.get("offset")) if isinstance(ident, dict) else None
        # Checked for type before the lookup: a list or object here must fail the batch, not the trigger.
        if key is None or not isinstance(key[0], str) or isinstance(key[1], bool) or not isinstance(key[1], int) \
                or key not in sent:
            return ItemFailures(frozenset(), {}, problem=f"itemIdentifier {ident!r} was not in the event")
        keys.add(key)
    reasons = {}
    entries = doc.get("failureReasons")
    for entry in entries if isinstance(entries, list) else []:  # optional and only informative: never fatal
        if isinstance(entry, dict) and isinstance(entry.get("partition"), str) and isinstance(entry.get("offset"), int):
            reasons[(entry["partition"], entry["offset"])] = str(entry.get("reason", ""))[:1000]
    return ItemFailures(frozenset(keys), reasons)


class BatchProcessor:
    """Runs in a worker thread; one call to `process` per batch, never two for one partition at once."""

    def __init__(self, config, invoke: Callable[[bytes], InvokeResult], builder,
                 deliver: Callable[[list[FailedRecord], threading.Event], None], stats,
                 *, clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self.invoke = invoke
        self.builder = builder
        self.deliver = deliver
        self.stats = stats
        self.clock = clock
        self.rand = rand
        self.max_retries = config.effective_retry_attempts
        self.item_failures = config.report_batch_item_failures and not config.per_message

    def process(self, records: Sequence, cancel: threading.Event) -> BatchOutcome:
        """Returns when every record succeeded or was dead-lettered; raises BatchAborted if cancelled."""
        out = BatchOutcome()
        self._segment(list(records), 0, 0, out, cancel)
        return out

    # -- the retry loop ------------------------------------------------------------------
    def _segment(self, records: list, retries: int, invokes: int, out: BatchOutcome,
                 cancel: threading.Event) -> None:
        outages = 0
        while records:
            records = self._drop_expired(records, invokes, out, cancel)
            if not records:
                return
            payload = self._payload(records)
            if len(payload) > self.config.max_payload_bytes:
                self._too_large(records, retries, invokes, out, cancel, f"{len(payload)} bytes")
                return
            result = self._invoke(payload, len(records), out)
            if result.is_infrastructure:
                outages += 1
                out.retries += 1
                self.stats.add(retries=1, endpoint_errors=1)
                delay = backoff_delay(outages, self.config.retry_base_delay_s, self.config.retry_max_delay_s, self.rand)
                log = logger.warning if outages == 1 or outages % 10 == 0 else logger.debug
                log("invoke failed (%s, %s), not the records' fault: retry %d in %.1fs", result.outcome,
                    result.error, outages, delay, extra=self._where(records))
                self._sleep(delay, cancel)
                continue
            outages = 0
            invokes += 1
            if result.outcome == TOO_LARGE:
                self._too_large(records, retries, invokes, out, cancel, result.error or "413")
                return

            reasons: dict = {}
            if result.outcome == FUNCTION_ERROR:
                self.stats.add(function_errors=1)
                error_type, message = parse_function_error(result.payload)
                if self.config.bisect_batch_on_function_error and len(records) > 1:
                    mid = len(records) // 2
                    logger.warning("function error %s: %s; bisecting %d records", error_type, message,
                                   len(records), extra=self._where(records))
                    self._segment(records[:mid], retries, invokes, out, cancel)
                    self._segment(records[mid:], retries, invokes, out, cancel)
                    return
                failed = records
                default_reason = f"function error ({result.function_error}) {error_type or 'Error'}: {message}"
            else:
                parsed = parse_item_failures(result.payload, records) if self.item_failures else None
                if parsed is None or (not parsed.keys and parsed.problem is None):
                    self._succeeded(len(records), out)
                    return
                if parsed.problem:
                    failed, error_type, message = records, "InvalidBatchItemFailures", parsed.problem
                    default_reason = f"invalid batchItemFailures, whole batch failed: {parsed.problem}"
                else:
                    failed = [r for r in records if (partition_key(r.topic, r.partition), r.offset) in parsed.keys]
                    self._succeeded(len(records) - len(failed), out)
                    error_type, message = "BatchItemFailure", None
                    default_reason, reasons = "reported in batchItemFailures", parsed.reasons

            if self.max_retries != -1 and retries >= self.max_retries:
                self._dead_letter([FailedRecord(
                    r, RETRIES_EXHAUSTED,
                    reasons.get((partition_key(r.topic, r.partition), r.offset)) or default_reason,
                    invokes, result.function_error, error_type, message, result.status_code,
                    result.executed_version) for r in failed], out, cancel)
                return
            retries += 1
            out.retries += 1
            self.stats.add(retries=1)
            delay = backoff_delay(retries, self.config.retry_base_delay_s, self.config.retry_max_delay_s, self.rand)
            logger.warning("%d of %d record(s) failed (%s); retry %d/%s in %.1fs", len(failed), len(records),
                           default_reason, retries, "inf" if self.max_retries == -1 else self.max_retries,
                           delay, extra=self._where(failed))
            self._sleep(delay, cancel)
            records = failed

    # -- helpers -------------------------------------------------------------------------
    def _payload(self, records: list) -> bytes:
        if self.config.per_message:
            # The seed's design: the raw JSON message is the whole event, one record per invoke.
            value = records[0].value
            return value if value is not None else b"null"
        return self.builder.build(records)

    def _invoke(self, payload: bytes, count: int, out: BatchOutcome) -> InvokeResult:
        result = self.invoke(payload)
        out.invocations += 1
        self.stats.add(invocations=1, invoked_records=count)
        self.stats.invoke_latency(result.latency_s)
        return result

    def _succeeded(self, count: int, out: BatchOutcome) -> None:
        out.succeeded += count
        self.stats.add(succeeded=count)

    def _too_large(self, records, retries, invokes, out, cancel, detail: str) -> None:
        if len(records) > 1:
            mid = len(records) // 2
            self._segment(records[:mid], retries, invokes, out, cancel)
            self._segment(records[mid:], retries, invokes, out, cancel)
            return
        reason = f"record does not fit the {self.config.max_payload_bytes}-byte invoke payload limit ({detail})"
        self._dead_letter([FailedRecord(records[0], PAYLOAD_TOO_LARGE, reason, invokes)], out, cancel)

    def _drop_expired(self, records: list, invokes: int, out: BatchOutcome, cancel) -> list:
        max_age = self.config.maximum_record_age_s
        if max_age == -1:
            return records
        oldest_ok = (self.clock() - max_age) * 1000
        expired = [r for r in records if 0 <= r.timestamp < oldest_ok]
        if not expired:
            return records
        reason = f"record older than MaximumRecordAgeInSeconds={max_age}"
        self._dead_letter([FailedRecord(r, RECORD_AGE_EXCEEDED, reason, invokes) for r in expired], out, cancel)
        return [r for r in records if not 0 <= r.timestamp < oldest_ok]

    def _dead_letter(self, failed: list[FailedRecord], out: BatchOutcome, cancel) -> None:
        self.deliver(failed, cancel)
        out.dead_lettered += len(failed)
        self.stats.add(dead_lettered=len(failed))
        for f in failed[:_LOGGED_PER_BATCH]:
            logger.error("dead-lettered (%s): %s", f.condition, f.reason, extra={
                "topic": f.record.topic, "partition": f.record.partition, "offset": f.record.offset,
                "attempts": f.attempts})
        if len(failed) > _LOGGED_PER_BATCH:
            logger.error("dead-lettered %d more record(s) of this batch", len(failed) - _LOGGED_PER_BATCH,
                         extra=self._where([f.record for f in failed]))

    @staticmethod
    def _where(records: Sequence) -> dict:
        first, last = records[0], records[-1]
        return {"topic": first.topic, "partition": first.partition, "offset": first.offset,
                "last_offset": last.offset, "records": len(records)}

    @staticmethod
    def _sleep(delay: float, cancel: threading.Event) -> None:
        if cancel.wait(delay):
            raise BatchAborted()
