"""Fault injection against the real components: the trigger killed with SIGKILL, the broker restarted,
the AWS endpoint down for 30 s, poison records in the stream, and a misbehaving OpenSky.

Every test runs on a stack of its own (IsolatedStack: other ports, its own state directory), because
it restarts, pauses or kills parts of it; the shared stack on 9092/4566 is never touched. Each test
counts what was produced against what reached SNS (an SQS queue subscribed without a filter),
recounted independently from the run's Kafka topic, and writes its counts to
.state/reliability/<fault>.json; `make reliability` turns them into
docs/RELIABILITY.md.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import boto3
import pytest
from kafka import KafkaConsumer, KafkaProducer

from fault_harness import (AWS_TEST_ENV, ROOT, IsolatedStack, Pipeline, committed_lag, reconcile, wait_drained,
                           wait_until, write_result)
from infra.demo import observe
from producer.runner import run_producer
from producer.settings import ProducerConfig
from producer.state_vector import FIELDS, as_row, parse_state_vector
from trigger import Trigger, TriggerConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(480)]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory):
    """Kafka + MiniStack of this module's own, stopped at the end (only what it started)."""
    stack = IsolatedStack(tmp_path_factory.mktemp("fault-stack") / "state")
    with pytest.MonkeyPatch.context() as mp:
        # Every boto3 client and kafka-python client made in these tests points at this stack.
        for key, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": stack.endpoint,
                           "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap}.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        stack.up()
        try:
            yield stack
        finally:
            stack.down()


@pytest.fixture
def pipeline(fault_stack):
    run = Pipeline(fault_stack)
    run.create_topics()
    run.deploy()
    yield run
    run.close()


class BackgroundProducer:
    """The real synthetic producer (run_producer) in a thread, as the demo runs it."""

    def __init__(self, pipeline: Pipeline, aircraft: int, interval_s: float, duration_s: float, seed: int = 11):
        self.config = ProducerConfig.from_env(source="synthetic", topic=pipeline.topic, aircraft=aircraft,
                                              seed=seed, interval_s=interval_s, duration_s=duration_s,
                                              kafka=pipeline.stack.kafka, connect_timeout_s=30)
        self.stats = None
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-producer", daemon=True)
        pipeline.on_close(self._cleanup)

    def _cleanup(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def _run(self) -> None:
        try:
            self.stats = run_producer(self.config, self.stop)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def start(self) -> "BackgroundProducer":
        self.thread.start()
        return self

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"the producer did not finish within {timeout_s}s"
        assert self.error is None, f"the producer failed: {self.error!r}"


class BackgroundTrigger:
    """The trigger (Trigger.run) in a thread of this process, so its stats can be read live."""

    def __init__(self, pipeline: Pipeline, **overrides):
        config = TriggerConfig.from_env(**{
            "topic": pipeline.topic, "dlq_topic": pipeline.dlq, "group_id": pipeline.group,
            "function_name": pipeline.settings.function_name, "kafka": pipeline.stack.kafka,
            "maximum_batching_window_s": 0.2, "status_interval_s": 2.0, **overrides})
        self.trigger = Trigger(config)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.trigger.run, kwargs={"stop_event": self.stop_event},
                                       name="fault-trigger", daemon=True)
        pipeline.on_close(self._cleanup)

    def _cleanup(self) -> None:
        if self.thread.is_alive():
            self.trigger.abort()
            self.thread.join(timeout=60)

    @property
    def stats(self):
        return self.trigger.stats

    def start(self) -> "BackgroundTrigger":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the trigger did not stop within 60 s"


def wait_assigned(pipeline: Pipeline) -> None:
    """Until the trigger's group has its partitions (a new group commits its starting offsets then).
    Faults are injected mid-stream, so the stream starts only once the consumer is in place; a first
    join can take up to a minute when kafka-python hangs in it (see the trigger's rebalance watchdog)."""
    wait_until(lambda: committed_lag(pipeline.stack.bootstrap, pipeline.topic, pipeline.group) is not None, 150,
               f"group {pipeline.group} to be assigned its partitions")


def committed_total(pipeline: Pipeline) -> int:
    """Records committed by the run's group so far (0 before its first commit)."""
    lag = committed_lag(pipeline.stack.bootstrap, pipeline.topic, pipeline.group)
    if lag is None:
        return 0
    return sum(observe.end_offsets(pipeline.stack.kafka, pipeline.topic).values()) - lag


def report(result: dict) -> str:
    keys = ("produced", "in_kafka", "in_air", "delivered", "missing", "duplicates", "unexpected", "dead_lettered",
            "dead_lettered_valid", "dlq_count_agrees", "details", "examples_missing")
    return json.dumps({k: result.get(k) for k in keys}, indent=1, default=str)


# --------------------------------------------------------------------------- 1. trigger killed
def test_trigger_killed_with_sigkill_three_times_mid_stream_loses_nothing(pipeline, spawn):
    # GIVEN the trigger as its own process, and the synthetic producer running until told to stop
    started = time.monotonic()
    env = pipeline.trigger_env(TRIGGER_BATCH_SIZE="50", TRIGGER_GROUP_INSTANCE_ID=f"{pipeline.group}-trigger-1")
    proc = spawn(env)
    wait_assigned(pipeline)
    producer = BackgroundProducer(pipeline, aircraft=150, interval_s=1.0, duration_s=240).start()

    # WHEN the trigger is killed with SIGKILL three times, each time once it has made progress
    # (static membership: the restarted process takes its partitions back without waiting 45 s for the
    # killed one's session to time out)
    kills = []
    for attempt in range(3):
        if attempt:
            proc = spawn(env)
        spawned, before = time.monotonic(), committed_total(pipeline)
        wait_until(lambda: committed_total(pipeline) >= before + 300, 150,
                   f"the trigger to commit 300 more records (it had {before})")
        assert producer.thread.is_alive(), "the producer finished before the kill: not mid-stream"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills.append({"progress_after_s": round(time.monotonic() - spawned, 1), "exit": proc.returncode})

    # AND it is started a last time, the stream goes on a little longer, then stops; the trigger drains it
    final = spawn(env, "--until-idle-s", "5")
    time.sleep(5)
    producer.stop.set()
    producer.join(timeout_s=60)
    assert final.wait(timeout=240) == 0, final.log_path.read_text()[-3000:]
    wait_drained(pipeline)

    # THEN every record that was in the air reached SNS at least once; duplicates are counted
    result = reconcile("trigger-sigkill", "Trigger process killed with SIGKILL 3x mid-stream (restarted each time)",
                       pipeline, producer.stats.published, started, kills=len(kills),
                       exit_codes=[k["exit"] for k in kills],
                       restart_to_progress_s=[k["progress_after_s"] for k in kills])
    assert all(k["exit"] == -signal.SIGKILL for k in kills)
    assert producer.stats.failed == 0
    assert result["missing"] == 0 and result["unexpected"] == 0, report(result)
    assert result["produced"] == result["in_kafka"] and result["dlq_count_agrees"], report(result)
    assert result["dead_lettered"] == 0, report(result)
    assert result["passed"]


# --------------------------------------------------------------------------- 2. broker restarted
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_broker_restart_mid_stream_producer_and_trigger_recover_by_themselves(fault_stack, pipeline, how):
    # GIVEN producer and trigger running against the broker
    started = time.monotonic()
    trigger = BackgroundTrigger(pipeline, batch_size=100).start()
    wait_assigned(pipeline)
    producer = BackgroundProducer(pipeline, aircraft=150, interval_s=1.0, duration_s=30).start()
    wait_until(lambda: trigger.stats.committed >= 600, 150, "the first 600 records committed")

    # WHEN the broker is stopped (SIGTERM, or SIGKILL: no clean shutdown) and started again 5 s later
    assert producer.thread.is_alive(), "the producer finished before the fault: not mid-stream"
    fault_stack.stop("kafka", kill=how == "sigkill")
    down_at = time.monotonic()
    try:
        time.sleep(5)
    finally:  # whatever happens, the next test gets a running broker
        fault_stack.start("kafka")
    downtime = time.monotonic() - down_at

    # THEN neither needs help: the producer finishes with every record acknowledged, and the trigger
    # catches up with everything produced
    producer.join(timeout_s=180)
    wait_drained(pipeline)
    trigger.stop()
    result = reconcile(f"broker-restart-{how}",
                       f"Kafka broker restarted mid-stream ({'SIGTERM' if how == 'sigterm' else 'SIGKILL'}, "
                       f"down {downtime:.0f} s)", pipeline, producer.stats.published, started,
                       downtime_s=round(downtime, 1), producer_failed=producer.stats.failed,
                       trigger_retries=trigger.stats.retries)
    assert producer.stats.failed == 0 and producer.stats.published == producer.stats.sent, report(result)
    assert result["produced"] == result["in_kafka"], report(result)
    assert result["missing"] == 0 and result["unexpected"] == 0, report(result)
    assert result["dead_lettered"] == 0, report(result)
    assert result["passed"]


# --------------------------------------------------------------------------- 3. AWS endpoint down
def _wait_for_a_quiet_moment(pipeline: Pipeline, timeout_s: float = 60) -> None:
    """Between two fleet snapshots: every record so far committed (so its notifications are in the queue,
    SNS->SQS being synchronous in MiniStack) and the subscriber has drained the queue. Checked in this
    order, so a record produced after the lag check cannot be published before the kill that follows."""
    sqs = boto3.client("sqs")

    def quiet() -> bool:
        if committed_lag(pipeline.stack.bootstrap, pipeline.topic, pipeline.group) != 0:
            return False
        attrs = sqs.get_queue_attributes(QueueUrl=pipeline.subscriber.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    wait_until(quiet, timeout_s, "a moment with nothing in flight", every_s=0.05)


@pytest.mark.parametrize("how", ["paused", "stopped"])
def test_aws_endpoint_down_for_30s_the_trigger_backs_off_and_resumes(fault_stack, pipeline, how):
    """paused: SIGSTOP/SIGCONT of MiniStack's process group: connections hang (invokes time out) and
    its state survives. stopped: SIGKILL: connections are refused; after 30 s MiniStack is started
    again and the function, topic and subscriber are deployed again by the test (MiniStack keeps
    them in memory only). The stop is timed between two fleet snapshots so that no notification
    is inside MiniStack when its memory goes; records keep arriving during the outage."""
    started = time.monotonic()
    interval = 1.0 if how == "paused" else 3.0
    trigger = BackgroundTrigger(pipeline, batch_size=100, invoke_read_timeout_s=8.0,
                                retry_max_delay_s=5.0).start()
    wait_assigned(pipeline)
    producer = BackgroundProducer(pipeline, aircraft=150, interval_s=interval, duration_s=50).start()
    wait_until(lambda: trigger.stats.committed >= 450, 150, "the first 450 records committed")
    assert producer.thread.is_alive(), "the producer finished before the fault: not mid-stream"

    # WHEN the endpoint is down for 30 s while the producer keeps producing
    if how == "paused":
        fault_stack.pause("ministack")
        try:
            time.sleep(30)
        finally:  # whatever happens, the next test gets a running endpoint
            fault_stack.resume("ministack")
    else:
        _wait_for_a_quiet_moment(pipeline)
        fault_stack.kill_now("ministack")
        try:
            time.sleep(30)
            errors_while_down = trigger.stats.endpoint_errors
        finally:
            fault_stack.start("ministack")
        pipeline.deploy()
    endpoint_errors = trigger.stats.endpoint_errors

    # THEN the trigger retried (not the records' fault), resumed, and nothing was lost or dead-lettered
    producer.join(timeout_s=120)
    wait_drained(pipeline, timeout_s=300)
    trigger.stop()
    result = reconcile(f"endpoint-{how}",
                       "AWS endpoint paused 30 s (SIGSTOP: calls hang, state kept)" if how == "paused" else
                       "AWS endpoint stopped 30 s (SIGKILL: connection refused; restarted and redeployed)",
                       pipeline, producer.stats.published, started, endpoint_errors=endpoint_errors,
                       trigger_retries=trigger.stats.retries)
    assert endpoint_errors > 0, "the trigger never noticed the outage"
    if how == "stopped":
        assert errors_while_down > 0
    assert trigger.stats.dead_lettered == 0 and result["dead_lettered"] == 0, report(result)
    assert result["missing"] == 0 and result["unexpected"] == 0, report(result)
    assert result["produced"] == result["in_kafka"], report(result)
    assert result["passed"]


# --------------------------------------------------------------------------- 4. poison records
def _airborne(**overrides) -> dict:
    state = {"icao24": "4ca7b4", "callsign": "RYR1AB", "origin_country": "Ireland", "time_position": 1_750_000_000,
             "last_contact": 1_750_000_000, "longitude": -6.2, "latitude": 53.4, "baro_altitude": 9000.0,
             "on_ground": False, "velocity": 220.0, "true_track": 90.0, "vertical_rate": 0.0, "sensors": None,
             "geo_altitude": 9100.0, "squawk": "2000", "spi": False, "position_source": 0, "category": 0,
             "source": "synthetic", "fetched_at": 1_750_000_001.0}
    state.update(overrides)
    return {k: v for k, v in state.items() if v is not ...}


def _json(doc) -> bytes:
    return json.dumps(doc).encode()


# (label, value bytes or None, substring of the reason the dead letter must carry)
POISON = [
    ("malformed JSON", b'{"icao24": "4ca7b4", "latitude": 53.4,', "not valid JSON"),
    ("not UTF-8", b"\xff\xfe\x00\x01 binary garbage \xc3\x28", "not UTF-8"),
    ("JSON array", b"[1, 2, 3]", "not an object"),
    ("tombstone (null value)", None, "tombstone"),
    ("latitude is a string", _json(_airborne(latitude="fifty-three")), "latitude is not a number"),
    ("on_ground is a string", _json(_airborne(on_ground="no")), "on_ground is not a boolean"),
    ("latitude 500", _json(_airborne(latitude=500.0)), "latitude 500.0 is outside"),
    ("altitude 1e308 m", _json(_airborne(baro_altitude=1e308)), "value out of range"),
    ("negative velocity", _json(_airborne(velocity=-50.0)), "velocity -50.0 m/s is negative"),
    ("time in year 318857", _json(_airborne(time_position=1e13)), "time_position is outside"),
    ("no icao24", _json(_airborne(icao24=...)), "icao24 is missing"),
    ("no origin_country", _json(_airborne(origin_country=...)), "origin_country is missing"),
    ("no time at all", _json(_airborne(time_position=..., last_contact=...)), "both missing"),
    ("empty object", b"{}", "icao24 is missing"),
    ("2 MB of non-JSON", b"x" * (2 * 1024 * 1024), "not valid JSON"),
    ("1.2 MB valid state (callsign)", _json(_airborne(callsign="Z" * 1_200_000)), "over SNS's"),
    ("5 MB record", b"{" + b"9" * (5 * 1024 * 1024), "6291456-byte invoke payload limit"),
]


def test_poison_records_are_dead_lettered_with_their_reason_and_the_stream_keeps_flowing(pipeline):
    # GIVEN a synthetic stream with poison records of every kind injected while it flows
    started = time.monotonic()
    trigger = BackgroundTrigger(pipeline, batch_size=100, maximum_retry_attempts=2, retry_base_delay_s=0.2,
                                retry_max_delay_s=1.0).start()
    wait_assigned(pipeline)
    producer = BackgroundProducer(pipeline, aircraft=100, interval_s=1.0, duration_s=12).start()
    injector = KafkaProducer(bootstrap_servers=pipeline.stack.bootstrap, acks="all",
                             max_request_size=8 * 1024 * 1024, linger_ms=0)
    injected = {}
    try:
        for i, (label, value, reason) in enumerate(POISON):
            meta = injector.send(pipeline.topic, key=f"poison{i:02d}".encode(), value=value).get(timeout=30)
            injected[(meta.partition, meta.offset)] = (label, reason)
            time.sleep(0.4)
    finally:
        injector.close()

    # WHEN the pipeline has handled everything
    producer.join(timeout_s=60)
    wait_drained(pipeline, timeout_s=240)
    trigger.stop()

    # THEN each poison record is in the dead-letter topic once, with its reason; every valid in-air
    # record reached SNS; nothing valid was dead-lettered
    result = reconcile("poison-records", f"{len(POISON)} poison records mixed into the stream (malformed, "
                                         "wrong types, absurd values, missing fields, 1-5 MB)",
                       pipeline, producer.stats.published, started, injected=len(POISON),
                       trigger_retries=trigger.stats.retries)
    letters = {(d["errorContext"]["partition"], d["errorContext"]["offset"]): d for d in result["dead_letter_docs"]}
    assert len(result["dead_letter_docs"]) == len(letters) == len(POISON), report(result)
    for where, (label, reason) in injected.items():
        assert where in letters, f"{label} was not dead-lettered"
        doc = letters[where]
        assert reason in doc["errorContext"]["reason"], (label, doc["errorContext"])
        assert doc["requestContext"]["condition"] in ("RetryAttemptsExhausted", "MaximumPayloadSizeExceeded")
    [too_large] = [where for where, (label, _) in injected.items() if label == "5 MB record"]
    assert letters[too_large]["requestContext"]["condition"] == "MaximumPayloadSizeExceeded"
    assert set(result["invalid_records"]) == set(injected), report(result)
    assert result["missing"] == 0 and result["unexpected"] == 0 and result["dead_lettered_valid"] == 0, report(result)
    assert result["passed"]


# --------------------------------------------------------------------------- 5. misbehaving OpenSky
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "opensky_states_all.json").read_text())
SECRET = "standin-client-secret-0123456789abcdef"


class Snapshots:
    """OpenSky answers built from the saved one, as the real feed evolves: each new snapshot is the last
    one with a few aircraft heard again (a newer last_contact); the rest are unchanged."""

    def __init__(self, t0: int):
        self.rows = [list(r) for r in FIXTURE["states"]]
        for row in self.rows:
            row[4] = t0

    def next(self, t: int, moved: int, extra_rows=()) -> dict:
        for row in self.rows[:moved]:
            row[4] = t
        return {"time": t, "states": [list(r) for r in self.rows] + list(extra_rows)}


def test_producer_against_a_misbehaving_opensky_waits_refreshes_and_never_publishes_garbage(fault_stack, tmp_path):
    from opensky_standin import OpenSkyStandIn, expired_token, ok, rate_limited, raw, slow, status

    t0 = FIXTURE["time"]
    bad_rows = [["zzzzzz", "BAD1", "Nowhere", t0, t0, 0.0, 0.0, 100.0, False],        # icao24 not hex
                ["3c6445", "NAN1", "Germany", t0, t0, float("nan"), 50.0, 100.0, False]]  # NaN longitude
    feed = Snapshots(t0)
    first, second, third = feed.next(t0, 37, bad_rows), feed.next(t0 + 5, 5), feed.next(t0 + 10, 7)
    script = [
        ok(first),                                            # tick 1: 37 valid states published, 2 rejected
        status(500), status(503), slow(4.0, ok(second)), ok(second),
        # tick 2: 500, 503, a reply slower than the 1.5 s timeout, then the answer: 5 aircraft moved
        expired_token(), ok(third),                           # tick 3: token expired -> refreshed -> 7 moved
        raw(json.dumps(feed.next(t0 + 15, 3)).encode()[:900]),  # tick 4: truncated JSON -> nothing published
        rate_limited(3),                                      # tick 5: 429, retry after 3 s
        ok(third),                                            # tick 6: the same snapshot again -> skipped
        ok(feed.next(t0 + 25, 4)),                            # tick 7: 4 moved
    ]
    topic = f"fault-opensky-{int(time.time())}"
    started = time.monotonic()
    with OpenSkyStandIn(script, client_id="producer-fault-test", client_secret=SECRET) as opensky:
        env = {**fault_stack.env, "OPENSKY_API_URL": opensky.api_url, "OPENSKY_TOKEN_URL": opensky.token_url,
               "OPENSKY_CLIENT_ID": "producer-fault-test", "OPENSKY_CLIENT_SECRET": SECRET,
               "OPENSKY_TIMEOUT": "1.5", "OPENSKY_BACKOFF_BASE": "0.2", "OPENSKY_MAX_RETRIES": "3",
               "KAFKA_TOPIC": topic, "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.run([sys.executable, "-m", "producer", "--source", "opensky", "--max-ticks", "7"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        requests, tokens = opensky.states_requests(), list(opensky.tokens)
        token_requests = opensky.token_requests

    # THEN it ran to the end, published exactly the valid, changed states, and nothing else
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    consumer = KafkaConsumer(topic, bootstrap_servers=fault_stack.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=5000)
    messages = [json.loads(m.value) for m in consumer]
    consumer.close()
    rows = FIXTURE["states"]
    expected_keys = ({(r[0], t0) for r in rows} | {(r[0], t0 + 5) for r in rows[:5]}
                     | {(r[0], t0 + 10) for r in rows[:7]} | {(r[0], t0 + 25) for r in rows[:4]})
    published_keys = [(m["icao24"], m["last_contact"]) for m in messages]
    garbage = [m for m in messages if parse_state_vector(as_row(m)) != {k: m[k] for k in FIELDS}]

    # the 429's wait was honoured: the next request came at least 3 s later
    statuses = [r.status for r in requests]
    after_429 = requests[statuses.index(429) + 1].at - requests[statuses.index(429)].at
    log = proc.stderr + proc.stdout
    result = {
        "fault": "opensky-misbehaving", "run_id": topic,
        "title": "OpenSky stand-in: 500/503, slow reply past the timeout, expired token, truncated JSON, 429, "
                 "duplicate snapshot, 2 bad rows",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.monotonic() - started, 1),
        "produced": stats["published"], "in_kafka": len(messages), "expected": len(expected_keys),
        "garbage_published": len(garbage) + len(set(published_keys) - expected_keys),
        "duplicates": len(published_keys) - len(set(published_keys)),
        "details": {"polls": len(requests), "token_requests": token_requests, "rejected_rows": stats["rejected"],
                    "poll_errors": stats["errors"], "waited_after_429_s": round(after_429, 2),
                    "secret_or_token_in_logs": SECRET in log or any(t in log for t in tokens)},
    }
    result["passed"] = (proc.returncode == 0 and set(published_keys) == expected_keys
                        and result["garbage_published"] == 0 and result["duplicates"] == 0
                        and after_429 >= 3.0 and not result["details"]["secret_or_token_in_logs"])
    write_result(result)

    assert sorted(published_keys) == sorted(expected_keys), report(result)
    assert not garbage and stats["published"] == len(messages) == 37 + 5 + 7 + 4
    assert stats["rejected"] == 2 and stats["errors"] == 2 and stats["ticks"] == 7  # truncated + 429
    slow_at = [r.delay_s for r in requests].index(4.0)  # abandoned at the client's 1.5 s timeout, then retried
    assert 1.5 <= requests[slow_at + 1].at - requests[slow_at].at < 4.0
    assert after_429 >= 3.0, f"the producer asked again {after_429:.2f}s after a 429 that said 3 s"
    # the expired token was refreshed once, and the request was repeated with the new one
    assert token_requests == 2 and len(tokens) == 2
    expired_at = statuses.index(401)
    assert requests[expired_at].token == tokens[0] and requests[expired_at + 1].token == tokens[1]
    # and neither the client secret nor any token ever reached the logs (DEBUG level)
    assert SECRET not in log and not any(t in log for t in tokens)
    assert result["passed"]
