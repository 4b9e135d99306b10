"""The producer against the real broker: what it publishes is what a consumer reads back."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from pipeline_common.kafka_client import KafkaSettings
from producer import ProducerConfig, run_producer
from producer.replay import read_batches
from producer.state_vector import FIELDS, MESSAGE_FIELDS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0


@pytest.fixture
def topic(stack):
    name = f"it-producer-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(name, 3, 1)])
    yield name
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=f"it-producer-{uuid.uuid4().hex[:8]}", enable_auto_commit=False)
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        # Anything beyond the expected count would be a duplicate: give it a moment to show up.
        for batch in consumer.poll(timeout_ms=1500).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def test_replayed_states_arrive_keyed_by_icao24_with_identical_values(stack, topic, tmp_path):
    # GIVEN a deterministic recording of 2 ticks of 250 synthetic aircraft
    path = tmp_path / "traffic.csv"
    run_producer(ProducerConfig(source="synthetic", aircraft=250, seed=5, max_ticks=2, start_time=T0,
                                export_csv=str(path)))
    expected = [state for states, _ in read_batches(path, 10_000) for state in states]
    assert len(expected) == 500

    # WHEN it is replayed to the real broker in micro-batches of 200 rows
    cfg = ProducerConfig(source="replay", replay=str(path), batch_rows=200, batch_delay_s=0.1, topic=topic,
                         kafka=KafkaSettings(bootstrap_servers=stack.bootstrap))
    stats = run_producer(cfg)
    assert (stats.published, stats.failed, stats.ticks) == (500, 0, 3)

    # THEN a consumer reads exactly those states: key = icao24, value = the shared JSON shape
    records = consume(stack.bootstrap, topic, 500)
    assert len(records) == 500
    values = [json.loads(r.value.decode("utf-8")) for r in records]
    assert all(r.key.decode() == v["icao24"] for r, v in zip(records, values))
    assert all(list(v) == list(MESSAGE_FIELDS) and v["source"] == "replay" for v in values)
    by_key = lambda states: sorted((s["icao24"], s["last_contact"]) for s in states)  # noqa: E731
    assert by_key(values) == by_key(expected)
    lookup = {(s["icao24"], s["last_contact"]): s for s in expected}
    assert all({k: v[k] for k in FIELDS} == lookup[(v["icao24"], v["last_contact"])] for v in values)
    # per-aircraft order: one partition per key, positions in time order within it
    partitions: dict[str, set] = {}
    for r, v in zip(records, values):
        partitions.setdefault(v["icao24"], set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert {r.timestamp is not None for r in records} == {True}


def test_synthetic_ticks_are_published_as_one_message_per_aircraft(stack, topic):
    cfg = ProducerConfig(source="synthetic", aircraft=400, seed=8, max_ticks=3, interval_s=0.5, topic=topic,
                         kafka=KafkaSettings(bootstrap_servers=stack.bootstrap))
    stats = run_producer(cfg)
    assert (stats.published, stats.failed) == (1200, 0)
    records = consume(stack.bootstrap, topic, 1200)
    assert len(records) == 1200
    keys = [r.key.decode() for r in records]
    assert len(set(keys)) == 400 and all(keys.count(k) == 3 for k in set(keys[:20]))


def test_sigterm_flushes_everything_sent_before_exiting(stack, topic):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "LOG_FORMAT": "json",
           "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "producer", "--source", "synthetic", "--aircraft", "1500",
                             "--interval", "0.5", "--topic", topic], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ticks = threading.Event()
    stderr_lines: list[str] = []

    def watch():
        for line in proc.stderr:
            stderr_lines.append(line)
            if '"tick": 3' in line:
                ticks.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert ticks.wait(90), "".join(stderr_lines[-20:])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        watcher.join(timeout=10)  # the watcher owns stderr; stdout holds only the final stats line
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(stderr_lines[-20:])
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["published"] == stats["sent"] >= 4500 and stats["failed"] == 0
    assert any("received SIGTERM" in line for line in stderr_lines)
    assert len(consume(stack.bootstrap, topic, stats["published"])) == stats["published"]


def test_a_past_day_is_produced_on_simulated_time_tick_by_tick(stack, topic):
    # GIVEN the command the issue-20 check runs: 1,000 aircraft, 6 ticks from 2021-10-07 00:00 UTC
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "PYTHONPATH": str(ROOT / "src")}
    day = 1_633_564_800
    started = time.monotonic()
    # WHEN the producer runs it against the real broker
    done = subprocess.run([sys.executable, "-m", "producer", "--source", "synthetic", "--aircraft", "1000",
                           "--start-time", str(day), "--interval", "1", "--ticks", "6", "--topic", topic],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert (stats["published"], stats["failed"], stats["ticks"]) == (6000, 0, 6)
    # THEN it took about 5 s of ticks, not minutes of planning legs from 2021 up to today
    assert took < 60, f"{took:.0f} s"
    # ... and Kafka holds one state per aircraft per tick, stamped 2021-10-07 00:00:00 + n s
    records = consume(stack.bootstrap, topic, 6000)
    values = [json.loads(r.value) for r in records]
    assert len(values) == 6000 and len({v["icao24"] for v in values}) == 1000
    assert sorted({v["time_position"] for v in values}) == [day + n for n in range(6)]
    assert len({(v["icao24"], v["time_position"]) for v in values}) == 6000
    # ... while each record's Kafka timestamp is when it was produced: the topic's retention
    # (KAFKA_RETENTION_MS, by record timestamp) keeps a replayed day as long as a live one
    assert all(abs(r.timestamp / 1000 - time.time()) < 600 for r in records)
