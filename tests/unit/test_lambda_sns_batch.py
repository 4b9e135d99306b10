"""PublishBatch chunking, concurrency and retries, against a scripted SNS client."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sns_batch import (MAX_BACKOFF_S, MAX_BATCH_BYTES, Notification, SnsBatchPublisher, chunk_notifications)

TOPIC = "arn:aws:sns:us-east-1:123456789012:FlightNotifications"


def note(ref: int, size: int = 100) -> Notification:
    return Notification(ref, "x" * size, {"origin_country": {"DataType": "String", "StringValue": "France"}})


class ScriptedSns:
    """Answers publish_batch from a script: a callable(entries, call_no) -> response or exception."""

    def __init__(self, script=None):
        self.calls: list[list[dict]] = []
        self.script = script or (lambda entries, n: {"Successful": [{"Id": e["Id"]} for e in entries]})
        self.lock = threading.Lock()
        self.threads: set[str] = set()

    def publish_batch(self, TopicArn, PublishBatchRequestEntries):
        assert TopicArn == TOPIC
        with self.lock:
            self.calls.append(PublishBatchRequestEntries)
            self.threads.add(threading.current_thread().name)
            n = len(self.calls)
        result = self.script(PublishBatchRequestEntries, n)
        if isinstance(result, Exception):
            raise result
        return result


def publisher(client, **kwargs) -> SnsBatchPublisher:
    kwargs.setdefault("sleep", lambda s: None)
    return SnsBatchPublisher(client, TOPIC, **kwargs)


def test_chunks_hold_at_most_ten_entries_in_input_order():
    chunks, too_big = chunk_notifications([note(i) for i in range(23)])
    assert [len(c) for c in chunks] == [10, 10, 3] and not too_big
    assert [n.ref for c in chunks for n in c] == list(range(23))


def test_chunks_stay_under_the_256_kib_request_limit():
    size = 100_000  # three of these exceed 262,144 bytes
    chunks, _ = chunk_notifications([note(i, size) for i in range(5)])
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert all(sum(n.size() for n in c) <= MAX_BATCH_BYTES for c in chunks)


def test_an_entry_bigger_than_the_limit_fails_without_a_call():
    client = ScriptedSns()
    failures = publisher(client).publish([note(0, MAX_BATCH_BYTES + 1), note(1)])
    assert [(f.ref, "over SNS's 262144-byte limit" in f.reason) for f in failures] == [(0, True)]
    assert len(client.calls) == 1 and [e["Id"] for e in client.calls[0]] == ["0"]


def test_message_attributes_are_sent_with_each_entry():
    client = ScriptedSns()
    assert publisher(client).publish([note(7)]) == []
    assert client.calls[0][0]["MessageAttributes"] == {"origin_country": {"DataType": "String",
                                                                          "StringValue": "France"}}


def test_batches_are_published_concurrently_on_the_pool():
    barrier = threading.Barrier(3, timeout=5)

    def script(entries, n):
        barrier.wait()  # only passes if three calls are in flight at once
        return {"Successful": [{"Id": e["Id"]} for e in entries]}

    client = ScriptedSns(script)
    with ThreadPoolExecutor(3) as pool:
        assert publisher(client, executor=pool).publish([note(i) for i in range(30)]) == []
    assert len(client.calls) == 3 and len(client.threads) == 3


def test_server_side_entry_failures_are_retried_until_they_succeed():
    sleeps = []

    def script(entries, n):
        if n == 1:
            return {"Successful": [{"Id": "0"}],
                    "Failed": [{"Id": "1", "Code": "InternalError", "Message": "boom", "SenderFault": False}]}
        return {"Successful": [{"Id": e["Id"]} for e in entries]}

    client = ScriptedSns(script)
    failures = publisher(client, sleep=sleeps.append, backoff_s=0.1, jitter=lambda: 1.0).publish([note(0), note(1)])
    assert failures == []
    assert [[e["Id"] for e in call] for call in client.calls] == [["0", "1"], ["1"]]  # only the failed one again
    assert sleeps == [0.1]


def test_retries_back_off_exponentially_then_report_the_last_reason():
    sleeps = []
    client = ScriptedSns(lambda entries, n: {"Failed": [
        {"Id": e["Id"], "Code": "Throttling", "Message": "slow down", "SenderFault": True} for e in entries]})
    failures = publisher(client, max_attempts=4, backoff_s=0.1, sleep=sleeps.append, jitter=lambda: 1.0).publish(
        [note(0)])
    assert len(client.calls) == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert failures[0].reason == "Throttling: slow down (gave up after 4 attempts)"


def test_the_shortest_wait_is_half_the_backoff_and_the_longest_is_capped():
    # pipeline_common.backoff's equal jitter: a retry never goes out at once, and never waits past
    # MAX_BACKOFF_S however many attempts came before.
    sleeps = []
    client = ScriptedSns(lambda entries, n: {"Failed": [
        {"Id": e["Id"], "Code": "Throttling", "Message": "slow down", "SenderFault": True} for e in entries]})
    publisher(client, max_attempts=4, backoff_s=0.1, sleep=sleeps.append, jitter=lambda: 0.0).publish([note(0)])
    publisher(client, max_attempts=8, backoff_s=0.1, sleep=sleeps.append, jitter=lambda: 1.0).publish([note(0)])
    assert sleeps[:3] == pytest.approx([0.05, 0.1, 0.2])
    assert sleeps[-1] == MAX_BACKOFF_S


def test_sender_faults_are_final_at_once():
    client = ScriptedSns(lambda entries, n: {
        "Successful": [{"Id": "1"}],
        "Failed": [{"Id": "0", "Code": "InvalidParameter", "Message": "bad attribute", "SenderFault": True}]})
    failures = publisher(client).publish([note(0), note(1)])
    assert [(f.ref, f.reason) for f in failures] == [(0, "InvalidParameter: bad attribute")]
    assert len(client.calls) == 1


def test_a_missing_topic_fails_every_entry_without_retrying():
    error = ClientError({"Error": {"Code": "NotFound", "Message": "Topic does not exist"},
                         "ResponseMetadata": {"HTTPStatusCode": 404}}, "PublishBatch")
    client = ScriptedSns(lambda entries, n: error)
    failures = publisher(client).publish([note(i) for i in range(12)])
    assert sorted(f.ref for f in failures) == list(range(12))
    assert failures[0].reason == "PublishBatch failed: NotFound: Topic does not exist"
    assert len(client.calls) == 2  # one per chunk, no retries


def test_throttled_or_unreachable_calls_are_retried():
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "PublishBatch")
    unreachable = EndpointConnectionError(endpoint_url="http://localhost:4566")
    answers = [throttled, unreachable]
    client = ScriptedSns(lambda entries, n: answers[n - 1] if n <= 2 else
                         {"Successful": [{"Id": e["Id"]} for e in entries]})
    assert publisher(client).publish([note(0)]) == []
    assert len(client.calls) == 3


def test_unreachable_endpoint_is_reported_after_the_last_attempt():
    client = ScriptedSns(lambda entries, n: EndpointConnectionError(endpoint_url="http://localhost:4566"))
    [failure] = publisher(client, max_attempts=2).publish([note(0)])
    assert "Could not connect to the endpoint URL" in failure.reason and "gave up after 2 attempts" in failure.reason
