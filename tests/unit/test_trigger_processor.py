"""Retries, bisection, partial batch failures and dead-lettering, against a fake function (no servers)."""
from __future__ import annotations

import base64
import json
import threading

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from pipeline_common.backoff import backoff_delay
from trigger.batch_processor import BatchAborted, BatchProcessor, parse_item_failures
from trigger.esm_event import EsmEventBuilder
from trigger.invoker import FUNCTION_ERROR, OK, THROTTLED, TOO_LARGE, UNAVAILABLE, InvokeResult
from trigger.mapping import TriggerConfig
from trigger.on_failure import PAYLOAD_TOO_LARGE, RECORD_AGE_EXCEEDED, RETRIES_EXHAUSTED
from trigger.stats import StatsCollector

TOPIC = "aviation-data"
NOW_MS = 1_700_000_000_000


def rec(offset, value=None, partition=0, timestamp=NOW_MS):
    value = value if value is not None else json.dumps({"icao24": f"a{offset:05d}"}).encode()
    return ConsumerRecord(TOPIC, partition, -1, offset, timestamp, 0, f"a{offset:05d}".encode(), value, [],
                          None, 6, len(value), -1)


def batch(n, poison=()):
    return [rec(i, b'{"icao24": "poison"}' if i in poison else None) for i in range(n)]


def ok(body=None):
    return InvokeResult(OK, payload=json.dumps(body).encode() if body is not None else b"null",
                        status_code=200, executed_version="$LATEST")


def function_error(message="boom", error_type="ValueError"):
    return InvokeResult(FUNCTION_ERROR, payload=json.dumps({"errorMessage": message, "errorType": error_type}).encode(),
                        function_error="Unhandled", status_code=200, executed_version="$LATEST")


def offsets(event):
    return [r["offset"] for records in event["records"].values() for r in records]


def values(event):
    return [base64.b64decode(r["value"]) for records in event["records"].values() for r in records]


class FakeFunction:
    """Receives exactly what the real function would, answers with `behaviour(event)`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.events = []

    def __call__(self, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        self.events.append(event)
        return self.behaviour(event)


def poison_fails(event):
    return function_error("poison record") if any(b"poison" in v for v in values(event)) else ok()


def poison_reported(event):
    failed = [r for rs in event["records"].values() for r in rs if b"poison" in base64.b64decode(r["value"])]
    return ok({"batchItemFailures": [{"itemIdentifier": {"partition": f"{r['topic']}-{r['partition']}",
                                                          "offset": r["offset"]}} for r in failed],
               "failureReasons": [{"partition": f"{r['topic']}-{r['partition']}", "offset": r["offset"],
                                   "reason": "not valid flight JSON"} for r in failed]})


def make(behaviour, **settings):
    base = dict(retry_base_delay_s=0.001, retry_max_delay_s=0.002)
    base.update(settings)
    config = TriggerConfig(**base)
    fn = FakeFunction(behaviour)
    dead = []
    stats = StatsCollector()
    processor = BatchProcessor(config, fn, EsmEventBuilder("localhost:9092"),
                               lambda failed, cancel: dead.extend(failed), stats,
                               clock=lambda: NOW_MS / 1000, rand=lambda: 0.5)
    return processor, fn, dead, stats


def run(processor, records, cancel=None):
    return processor.process(records, cancel or threading.Event())


def test_a_good_batch_is_one_invocation_and_all_succeed():
    processor, fn, dead, stats = make(lambda e: ok({"received": 5}))
    out = run(processor, batch(5))
    assert (out.succeeded, out.dead_lettered, out.invocations, out.retries) == (5, 0, 1, 0)
    assert offsets(fn.events[0]) == [0, 1, 2, 3, 4] and dead == []
    assert stats.snapshot().invoked_records == 5


def test_function_error_retries_the_whole_batch_then_dead_letters_it_with_the_reason():
    processor, fn, dead, _ = make(poison_fails, maximum_retry_attempts=2)
    out = run(processor, batch(4, poison={2}))
    # 1 invocation + 2 retries, all with the same 4 records, then all 4 dead-lettered (no bisection)
    assert [offsets(e) for e in fn.events] == [[0, 1, 2, 3]] * 3
    assert out.dead_lettered == 4 and out.succeeded == 0
    assert {f.condition for f in dead} == {RETRIES_EXHAUSTED}
    assert all(f.attempts == 3 and f.function_error == "Unhandled" for f in dead)
    assert "poison record" in dead[0].reason and dead[0].error_type == "ValueError"


def test_bisect_isolates_the_poison_record_and_delivers_the_others():
    processor, fn, dead, _ = make(poison_fails, maximum_retry_attempts=1, bisect_batch_on_function_error=True)
    out = run(processor, batch(8, poison={5}))
    assert [f.record.offset for f in dead] == [5]
    assert out.succeeded == 7
    # split on error, each half retried on its own, in offset order; the poison alone is retried
    # once (MaximumRetryAttempts=1), then dead-lettered, and the rest of the batch goes on
    assert [offsets(e) for e in fn.events] == [
        [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [5], [6, 7]]


def test_bisection_does_not_use_up_retries():
    # With 0 retries a poison record alone is dead-lettered after its first solo invocation,
    # not when the batch holding it first failed.
    processor, fn, dead, _ = make(poison_fails, maximum_retry_attempts=0, bisect_batch_on_function_error=True)
    out = run(processor, batch(4, poison={0}))
    assert [f.record.offset for f in dead] == [0] and out.succeeded == 3


def test_partial_batch_failure_retries_only_the_reported_records_and_keeps_the_reason():
    processor, fn, dead, _ = make(poison_reported, maximum_retry_attempts=2)
    out = run(processor, batch(5, poison={3}))
    assert offsets(fn.events[0]) == [0, 1, 2, 3, 4]
    assert [offsets(e) for e in fn.events[1:]] == [[3], [3]]
    assert out.succeeded == 4 and [f.record.offset for f in dead] == [3]
    assert dead[0].reason == "not valid flight JSON" and dead[0].function_error is None
    assert dead[0].condition == RETRIES_EXHAUSTED and dead[0].attempts == 3


def test_a_reported_failure_that_succeeds_on_retry_is_not_dead_lettered():
    calls = []

    def flaky(event):
        calls.append(offsets(event))
        if len(calls) == 1:
            return ok({"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 1}}]})
        return ok({"batchItemFailures": []})

    processor, fn, dead, _ = make(flaky)
    out = run(processor, batch(3))
    assert calls == [[0, 1, 2], [1]] and dead == [] and out.succeeded == 3 and out.retries == 1


@pytest.mark.parametrize("identifier", [
    {"partition": f"{TOPIC}-0", "offset": 99},      # not in the event
    {"partition": f"{TOPIC}-7", "offset": 1},       # wrong partition
    {"partition": f"{TOPIC}-0", "offset": "1"},     # offset must be a number
    None, "",
])
def test_an_identifier_not_in_the_event_fails_the_whole_batch(identifier):
    answers = iter([ok({"batchItemFailures": [{"itemIdentifier": identifier}]}), ok()])
    processor, fn, dead, _ = make(lambda e: next(answers))
    out = run(processor, batch(3))
    assert [offsets(e) for e in fn.events] == [[0, 1, 2], [0, 1, 2]]
    assert out.succeeded == 3 and dead == []


@pytest.mark.parametrize("body", [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}, "ok", [1]])
def test_empty_or_null_answers_mean_success(body):
    processor, fn, dead, _ = make(lambda e: ok(body))
    assert run(processor, batch(2)).succeeded == 2 and len(fn.events) == 1


def test_without_report_batch_item_failures_reported_items_are_ignored_like_aws():
    processor, fn, dead, _ = make(poison_reported, report_batch_item_failures=False)
    out = run(processor, batch(3, poison={1}))
    assert out.succeeded == 3 and dead == [] and len(fn.events) == 1


@pytest.mark.parametrize("outcome", [UNAVAILABLE, THROTTLED])
def test_endpoint_down_or_throttling_is_retried_without_using_retries_or_dead_lettering(outcome):
    answers = iter([InvokeResult(outcome, error="EndpointConnectionError")] * 25 + [ok()])
    processor, fn, dead, stats = make(lambda e: next(answers), maximum_retry_attempts=0)
    out = run(processor, batch(3))
    assert out.succeeded == 3 and dead == []
    assert len(fn.events) == 26 and out.retries == 25
    assert stats.snapshot().endpoint_errors == 25


def test_shutdown_interrupts_an_outage_without_dead_lettering_anything():
    cancel = threading.Event()

    def down(event):
        if len(fn.events) == 5:
            cancel.set()
        return InvokeResult(UNAVAILABLE, error="connection refused")

    processor, fn, dead, _ = make(down)
    with pytest.raises(BatchAborted):
        run(processor, batch(3), cancel)
    assert dead == []


def test_infinite_retries_become_ten_when_an_on_failure_destination_exists():
    processor, fn, dead, _ = make(poison_fails, maximum_retry_attempts=-1)
    run(processor, batch(1, poison={0}))
    assert len(fn.events) == 11 and len(dead) == 1 and dead[0].attempts == 11


def test_infinite_retries_without_destination_never_give_up():
    cancel = threading.Event()

    def failing(event):
        if len(fn.events) >= 40:
            cancel.set()
        return function_error()

    processor, fn, dead, _ = make(failing, maximum_retry_attempts=-1, dlq_topic=None)
    with pytest.raises(BatchAborted):
        run(processor, batch(1), cancel)
    assert len(fn.events) >= 40 and dead == []


def test_records_older_than_maximum_record_age_are_dead_lettered_without_invoking():
    old = rec(0, timestamp=NOW_MS - 120_000)
    fresh = rec(1, timestamp=NOW_MS - 1_000)
    processor, fn, dead, _ = make(lambda e: ok(), maximum_record_age_s=60)
    out = run(processor, [old, fresh])
    assert [f.record.offset for f in dead] == [0] and dead[0].condition == RECORD_AGE_EXCEEDED
    assert dead[0].attempts == 0 and offsets(fn.events[0]) == [1] and out.succeeded == 1


def test_a_record_too_large_for_the_payload_limit_is_dead_lettered_and_the_batch_split():
    big = rec(1, value=b"x" * 3000)
    processor, fn, dead, _ = make(lambda e: ok(), max_payload_bytes=2048)
    out = run(processor, [rec(0), big, rec(2)])
    assert [f.record.offset for f in dead] == [1] and dead[0].condition == PAYLOAD_TOO_LARGE
    assert sorted(o for e in fn.events for o in offsets(e)) == [0, 2] and out.succeeded == 2


def test_a_413_from_the_endpoint_splits_the_batch():
    processor, fn, dead, _ = make(lambda e: InvokeResult(TOO_LARGE) if len(offsets(e)) > 2 else ok())
    out = run(processor, batch(8))
    assert out.succeeded == 8 and dead == []
    assert [len(offsets(e)) for e in fn.events if len(offsets(e)) <= 2] == [2, 2, 2, 2]


def test_per_message_mode_sends_the_raw_message_as_the_event():
    raw = []
    processor = BatchProcessor(TriggerConfig(mode="per-message"), lambda p: raw.append(p) or ok(),
                               EsmEventBuilder("h:1"), lambda f, c: None, StatsCollector())
    run(processor, [rec(7)])
    assert raw == [b'{"icao24": "a00007"}']


def test_parse_item_failures_collects_reasons_by_partition_and_offset():
    body = json.dumps({"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 2}}],
                       "failureReasons": [{"partition": f"{TOPIC}-0", "offset": 2, "reason": "SNS publish failed"}]})
    parsed = parse_item_failures(body.encode(), batch(3))
    assert parsed.keys == {(f"{TOPIC}-0", 2)} and parsed.reasons[(f"{TOPIC}-0", 2)] == "SNS publish failed"


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    assert backoff_delay(1, 1.0, 30.0, rand=lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 30.0, rand=lambda: 1.0) == 1.0
    assert backoff_delay(4, 1.0, 30.0, rand=lambda: 1.0) == 8.0
    assert backoff_delay(50, 1.0, 30.0, rand=lambda: 1.0) == 30.0
    assert 15.0 <= backoff_delay(50, 1.0, 30.0) <= 30.0
