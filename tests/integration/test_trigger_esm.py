"""The trigger against the real broker and a real function on the native MiniStack endpoint.

The test function (deployed here from an inline zip) writes every event it receives to
EVENT_DIR/<topic>/<uuid>.json, so the tests can see exactly what the function got, and how often.
It fails records whose value contains "poison": by raising (MODE=raise) or by reporting them in
batchItemFailures with a failureReason (MODE=report).
"""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from fault_harness import TcpProxy
from trigger import Trigger, TriggerConfig
from trigger.invoker import LambdaInvoker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]

FUNCTION_SOURCE = '''
import base64, json, os, uuid

def handler(event, context):
    records = event.get("records") or {}
    topic = next((r["topic"] for rs in records.values() for r in rs), "none")
    out = os.path.join(os.environ["EVENT_DIR"], topic)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, uuid.uuid4().hex + ".json"), "w") as f:
        json.dump(event, f)
    failures, reasons = [], []
    for key, rs in records.items():
        for r in rs:
            if b"poison" in base64.b64decode(r.get("value", "")):
                failures.append({"itemIdentifier": {"partition": key, "offset": r["offset"]}})
                reasons.append({"partition": key, "offset": r["offset"], "reason": "poison value, offset %d" % r["offset"]})
    if failures and os.environ["MODE"] == "raise":
        raise ValueError("poison record in batch")
    return {"received": sum(len(rs) for rs in records.values()), "batchItemFailures": failures,
            "failureReasons": reasons}
'''


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("recorder.py", source)
    return buf.getvalue()


_CREATED_TOPICS: list[str] = []


@pytest.fixture(scope="module")
def event_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trigger-events")


@pytest.fixture(scope="module", autouse=True)
def _drop_topics_afterwards(stack):
    """The broker is shared: delete the topics this module created."""
    yield
    if _CREATED_TOPICS:
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
        try:
            admin.delete_topics(list(_CREATED_TOPICS))
        finally:
            admin.close()
        _CREATED_TOPICS.clear()


def _deploy(stack, event_dir: Path, mode: str) -> str:
    client = boto3.client("lambda", endpoint_url=stack.endpoint)
    name = f"it-trigger-{mode}-{uuid.uuid4().hex[:6]}"
    client.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/test",
                           Handler="recorder.handler", Code={"ZipFile": _zip(FUNCTION_SOURCE)}, Timeout=30,
                           Environment={"Variables": {"EVENT_DIR": str(event_dir), "MODE": mode}})
    deadline = time.time() + 60
    while client.get_function_configuration(FunctionName=name).get("State") != "Active":
        assert time.time() < deadline, f"{name} never became Active"
        time.sleep(0.5)
    return name


@pytest.fixture(scope="module")
def reporting_function(stack, event_dir):
    name = _deploy(stack, event_dir, "report")
    yield name
    boto3.client("lambda", endpoint_url=stack.endpoint).delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def raising_function(stack, event_dir):
    name = _deploy(stack, event_dir, "raise")
    yield name
    boto3.client("lambda", endpoint_url=stack.endpoint).delete_function(FunctionName=name)


def new_topic(stack, partitions: int = 3) -> tuple[str, str]:
    topic = f"it-trigger-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{topic}-dlq", 1, 1)])
    admin.close()
    _CREATED_TOPICS.extend([topic, f"{topic}-dlq"])
    return topic, f"{topic}-dlq"


def produce(stack, topic: str, messages) -> list:
    """messages: (key, value, headers) tuples; returns each one's RecordMetadata."""
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic, key=k, value=v, headers=h or None) for k, v, h in messages]
    producer.flush()
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    return metas


def flights(n: int, start: int = 0, poison=()) -> list:
    return [(f"{i:06x}".encode(), json.dumps({"icao24": f"{i:06x}", "n": i,
                                              **({"note": "poison"} if i in poison else {})}).encode(), None)
            for i in range(start, start + n)]


def received(event_dir: Path, topic: str) -> list[dict]:
    folder = event_dir / topic
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
    return [json.loads(p.read_text()) for p in files]


def delivered(events: list[dict]) -> list[tuple[int, int]]:
    return [(r["partition"], r["offset"]) for e in events for rs in e["records"].values() for r in rs]


def config(stack, topic, dlq, function, **kw) -> TriggerConfig:
    base = dict(topic=topic, dlq_topic=dlq, function_name=function, group_id=f"it-{uuid.uuid4().hex[:8]}",
                maximum_batching_window_s=0.2, retry_base_delay_s=0.05, retry_max_delay_s=0.5, status_interval_s=2)
    base.update(kw)
    return TriggerConfig.from_env(**base)


def dead_letters(stack, dlq: str, expected: int, timeout_s: float = 20) -> list[tuple[bytes, dict]]:
    consumer = KafkaConsumer(dlq, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
                             group_id=f"it-dlq-{uuid.uuid4().hex[:8]}", consumer_timeout_ms=int(timeout_s * 1000))
    out = []
    for msg in consumer:
        out.append((msg.key, json.loads(msg.value)))
        if len(out) >= expected:
            break
    consumer.close()
    return out


def test_the_function_receives_exactly_the_esm_event(stack, reporting_function, event_dir):
    # GIVEN records with a key, without a key, with headers, and a tombstone
    topic, dlq = new_topic(stack, partitions=1)
    messages = [(b"3c6444", b'{"icao24": "3c6444"}', [("source", b"opensky")]),
                (None, b'{"icao24": "keyless"}', None),
                (b"tomb", None, None)]
    metas = produce(stack, topic, messages)

    # WHEN the trigger delivers them
    stats = Trigger(config(stack, topic, dlq, reporting_function)).run(until_idle_s=3, duration=120)

    # THEN the function got one event, field for field what AWS's Kafka ESM would send
    assert stats.succeeded == 3 and stats.dead_lettered == 0
    [event] = received(event_dir, topic)
    expected_records = []
    for (key, value, headers), meta in zip(messages, metas):
        rec = {"topic": topic, "partition": 0, "offset": meta.offset, "timestamp": meta.timestamp,
               "timestampType": "CREATE_TIME"}
        if key is not None:
            rec["key"] = base64.b64encode(key).decode()
        if value is not None:
            rec["value"] = base64.b64encode(value).decode()
        rec["headers"] = [{name: list(raw)} for name, raw in headers or []]
        expected_records.append(rec)
    assert event == {"eventSource": "SelfManagedKafka", "bootstrapServers": stack.bootstrap,
                     "records": {f"{topic}-0": expected_records}}


def test_a_poison_record_is_dead_lettered_with_its_reason_and_the_rest_delivered(stack, raising_function, event_dir):
    # GIVEN 40 records, one of which makes the function raise
    topic, dlq = new_topic(stack)
    metas = produce(stack, topic, flights(40, poison={17}))
    poison = metas[17]

    # WHEN the trigger runs with bisection and two retries
    stats = Trigger(config(stack, topic, dlq, raising_function, batch_size=10, bisect_batch_on_function_error=True,
                           maximum_retry_attempts=2)).run(until_idle_s=3, duration=150)

    # THEN only the poison record is dead-lettered, with the function's error, and every other record
    # reached the function in a batch that succeeded
    assert stats.dead_lettered == 1 and stats.succeeded == 39
    [(key, doc)] = dead_letters(stack, dlq, 1)
    assert key == b"000011"
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["responseContext"]["functionError"] == "Unhandled"
    assert "poison record in batch" in doc["errorContext"]["reason"]
    assert doc["errorContext"]["attempts"] == doc["requestContext"]["approximateInvokeCount"] >= 3
    [original] = doc["payload"]["records"][f"{topic}-{poison.partition}"]
    assert (original["partition"], original["offset"]) == (poison.partition, poison.offset)
    assert b"poison" in base64.b64decode(original["value"])
    good = {(m.partition, m.offset) for i, m in enumerate(metas) if i != 17}
    succeeded_events = [e for e in received(event_dir, topic)
                        if (poison.partition, poison.offset) not in delivered([e])]
    assert good <= set(delivered(succeeded_events))


def test_partial_batch_failures_retry_only_the_failed_record(stack, reporting_function, event_dir):
    # GIVEN 30 records in one partition, one of which the function reports as failed
    topic, dlq = new_topic(stack, partitions=1)
    metas = produce(stack, topic, flights(30, poison={12}))

    sqs = boto3.client("sqs", endpoint_url=stack.endpoint)
    queue_url = sqs.create_queue(QueueName=f"{topic}-failures")["QueueUrl"]

    # WHEN the trigger runs with ReportBatchItemFailures, 2 retries, and an SQS destination as well
    stats = Trigger(config(stack, topic, dlq, reporting_function, batch_size=100, dlq_sqs_url=queue_url,
                           maximum_retry_attempts=2)).run(until_idle_s=3, duration=120)

    # THEN the first event carried all 30, the two retries only the failed record, every other record was
    # delivered exactly once, and the failed one was dead-lettered with the function's failureReason
    events = received(event_dir, topic)
    assert [len(delivered([e])) for e in events] == [30, 1, 1]
    assert delivered(events[1:]) == [(0, metas[12].offset)] * 2
    counts = {}
    for key in delivered(events):
        counts[key] = counts.get(key, 0) + 1
    assert all(n == 1 for key, n in counts.items() if key != (0, metas[12].offset))
    assert stats.succeeded == 29 and stats.dead_lettered == 1
    [(key, doc)] = dead_letters(stack, dlq, 1)
    assert doc["errorContext"]["reason"] == f"poison value, offset {metas[12].offset}"
    assert doc["responseContext"]["functionError"] is None
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    assert json.loads(message["Body"])["errorContext"] == doc["errorContext"]


def log_tail(proc) -> str:
    return proc.log_path.read_text()[-3000:]


def _trigger_env(stack, topic, dlq, function, group, **extra) -> dict:
    env = dict(os.environ, KAFKA_TOPIC=topic, KAFKA_DLQ_TOPIC=dlq, TRIGGER_FUNCTION_NAME=function,
               TRIGGER_GROUP_ID=group, KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, AWS_ENDPOINT_URL=stack.endpoint,
               TRIGGER_MAXIMUM_BATCHING_WINDOW_S="0.1", TRIGGER_STATUS_INTERVAL_S="2", LOG_FORMAT="json",
               PYTHONPATH=str(ROOT / "src"))
    env.update(extra)
    return env


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_nothing(stack, reporting_function, event_dir, spawn):
    # GIVEN a stream that is still being produced while the trigger runs in small batches
    topic, dlq = new_topic(stack)
    group = f"it-kill-{uuid.uuid4().hex[:8]}"
    env = _trigger_env(stack, topic, dlq, reporting_function, group, TRIGGER_BATCH_SIZE="50")
    metas = produce(stack, topic, flights(1500))
    first = spawn(env)
    _wait_for(lambda: len(delivered(received(event_dir, topic))) >= 300, 90, "the first deliveries")
    metas += produce(stack, topic, flights(1500, start=1500))

    # WHEN the trigger is killed with SIGKILL mid-stream (no shutdown, no commit of the batches in flight)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before_restart = len(delivered(received(event_dir, topic)))
    assert before_restart < len(metas), "the kill came too late to be mid-stream"

    # AND it is restarted with the same group, draining the topic
    second = spawn(env, "--until-idle-s", "4")
    assert second.wait(timeout=180) == 0, log_tail(second)

    # THEN every produced record reached the function at least once (duplicates are allowed)
    got = set(delivered(received(event_dir, topic)))
    missing = {(m.partition, m.offset) for m in metas} - got
    assert not missing, f"{len(missing)} record(s) never delivered, e.g. {sorted(missing)[:5]}"


@pytest.mark.slow
def test_sigterm_finishes_commits_and_leaves_the_group(stack, reporting_function, event_dir, spawn):
    # GIVEN a running trigger that has delivered everything produced so far
    topic, dlq = new_topic(stack)
    group = f"it-term-{uuid.uuid4().hex[:8]}"
    metas = produce(stack, topic, flights(600))
    proc = spawn(_trigger_env(stack, topic, dlq, reporting_function, group, TRIGGER_BATCH_SIZE="100"))
    _wait_for(lambda: len(set(delivered(received(event_dir, topic)))) >= len(metas), 90, "all deliveries")

    # WHEN it gets SIGTERM
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = log_tail(proc)

    # THEN it exits cleanly, its offsets are committed up to the end of every partition, and the
    # group has no members left (it left instead of waiting for a session timeout)
    assert proc.returncode == 0, err
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    committed = {tp.partition: o.offset for tp, o in admin.list_group_offsets(group)[group].items()}
    description = admin.describe_groups([group])[group]
    admin.close()
    ends = {}
    for m in metas:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    assert committed == ends, err
    assert description["group_state"] == "Empty" and not description["members"], (description, err)


def test_latest_skips_the_backlog_and_a_known_group_resumes_where_it_stopped(stack, reporting_function, event_dir):
    # GIVEN a backlog produced before the group exists
    topic, dlq = new_topic(stack, partitions=1)
    backlog = produce(stack, topic, flights(20))
    cfg = config(stack, topic, dlq, reporting_function, starting_position="LATEST")

    # WHEN a new group starts at LATEST, then new records arrive
    first = Trigger(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=first.run, kwargs={"stop_event": stop, "duration": 90})
    runner.start()
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    # the new group's LATEST start is committed as soon as it is resolved
    _wait_for(lambda: admin.list_group_offsets(cfg.group_id).get(cfg.group_id), 30, "the starting position")
    admin.close()
    fresh = produce(stack, topic, flights(5, start=100))
    _wait_for(lambda: first.stats.succeeded >= 5, 60, "the fresh records")
    stop.set()
    runner.join(timeout=60)

    # AND later, with the trigger stopped, more records arrive and the same group starts again
    later = produce(stack, topic, flights(7, start=200))
    Trigger(cfg).run(until_idle_s=3, duration=90)

    # THEN the backlog was never invoked, and each record after the start was invoked exactly once
    offsets = [o for _, o in delivered(received(event_dir, topic))]
    assert not set(offsets) & {m.offset for m in backlog}
    assert sorted(offsets) == sorted(m.offset for m in fresh + later)


def test_at_timestamp_starts_a_new_group_at_the_first_record_since_then(stack, reporting_function, event_dir):
    # GIVEN records produced before and after a moment T
    topic, dlq = new_topic(stack)
    produce(stack, topic, flights(10))
    time.sleep(1.1)
    moment = time.time()
    after = produce(stack, topic, flights(6, start=50))

    # WHEN a new group starts AT_TIMESTAMP T
    Trigger(config(stack, topic, dlq, reporting_function, starting_position="AT_TIMESTAMP",
                   starting_position_timestamp=moment)).run(until_idle_s=3, duration=90)

    # THEN exactly the records since T were invoked
    assert sorted(delivered(received(event_dir, topic))) == sorted((m.partition, m.offset) for m in after)


def test_per_message_mode_sends_each_raw_message_as_the_event(stack, reporting_function, event_dir):
    # GIVEN three flight messages
    topic, dlq = new_topic(stack, partitions=1)
    messages = flights(3, start=900)
    produce(stack, topic, messages)

    # WHEN the trigger runs in the seed's per-message mode
    stats = Trigger(config(stack, topic, dlq, reporting_function, mode="per-message")).run(until_idle_s=3,
                                                                                            duration=90)

    # THEN there was one invocation per message, and each event was the raw JSON message itself
    assert stats.invocations == 3 and stats.succeeded == 3
    raw = [json.loads(p.read_text()) for p in (event_dir / "none").glob("*.json")]
    assert sorted(e["n"] for e in raw if e.get("n", 0) >= 900) == [900, 901, 902]


@pytest.mark.slow
def test_two_triggers_in_one_group_share_the_partitions_and_lose_nothing(stack, reporting_function, event_dir):
    # GIVEN one trigger already consuming, and a second one of the same group joining mid-stream
    topic, dlq = new_topic(stack, partitions=4)
    group = f"it-pair-{uuid.uuid4().hex[:8]}"
    metas = produce(stack, topic, flights(800))
    first, second = (Trigger(config(stack, topic, dlq, reporting_function, group_id=group, batch_size=50))
                     for _ in range(2))
    threads = [threading.Thread(target=first.run, kwargs={"until_idle_s": 6, "duration": 150})]
    threads[0].start()
    _wait_for(lambda: first.stats.succeeded >= 100, 60, "the first trigger to start")
    threads.append(threading.Thread(target=second.run, kwargs={"until_idle_s": 6, "duration": 150}))
    threads[1].start()
    _wait_for(lambda: second.stats.lag_by_partition, 60, "the second trigger's assignment")
    metas += produce(stack, topic, flights(800, start=800))

    # WHEN both drain the topic
    for t in threads:
        t.join(timeout=170)

    # THEN every record was delivered at least once, and the partitions were split between the two
    missing = {(m.partition, m.offset) for m in metas} - set(delivered(received(event_dir, topic)))
    assert not missing
    mine, theirs = set(first.stats.lag_by_partition), set(second.stats.lag_by_partition)
    assert not mine & theirs and len(mine | theirs) == 4
    assert second.stats.succeeded > 0 and first.stats.succeeded > 0


def test_an_unreachable_endpoint_dead_letters_nothing_and_delivers_everything_once_it_is_back(
        stack, reporting_function, event_dir):
    # GIVEN records, and an endpoint that refuses connections for the first seconds
    topic, dlq = new_topic(stack)
    metas = produce(stack, topic, flights(120))
    proxy = TcpProxy(int(stack.endpoint.rsplit(":", 1)[1]), listening=False)
    invoker = LambdaInvoker(reporting_function, endpoint_url=f"http://127.0.0.1:{proxy.port}", read_timeout_s=30,
                            connect_timeout_s=1, max_pool_connections=8)
    trigger = Trigger(config(stack, topic, dlq, reporting_function, maximum_retry_attempts=0,
                             retry_max_delay_s=1.0), invoker=invoker)
    runner = threading.Thread(target=trigger.run, kwargs={"until_idle_s": 4, "duration": 120})
    runner.start()
    try:
        _wait_for(lambda: trigger.stats.endpoint_errors >= 5, 60, "failed invocations while the endpoint is down")
        # WHEN the endpoint comes back
        proxy.listen()
        runner.join(timeout=150)
    finally:
        proxy.close()

    # THEN no record was dead-lettered (an outage is not the records' fault, even with 0 retries)
    # and every record reached the function
    stats = trigger.stats
    assert stats.dead_lettered == 0 and stats.succeeded == len(metas)
    assert {(m.partition, m.offset) for m in metas} <= set(delivered(received(event_dir, topic)))
