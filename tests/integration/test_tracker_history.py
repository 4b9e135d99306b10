"""The tracker's history over time boundaries, against the real broker and PostgreSQL (issue 20): every
batch committed across maintenance passes, a past day replayed, UTC midnight, kill -9 at random points,
a SIGTERM, and an API that never waits behind the writer. Every check reads PostgreSQL from another
connection and compares with what Kafka holds."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
import requests

from tracker.service import TrackerService
from tracker.settings import TrackerConfig
from tracker_support import (committed_offsets, count, free_port, fresh_topic, isolated_schema, keys, produce,
                             spawn_tracker, state, topic_positions, tracker_config, wait_for)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PAST_DAY = 1633564800  # 2021-10-07 00:00 UTC, the day of the real replay


@pytest.fixture
def db(database_url):
    with isolated_schema(database_url) as url:
        yield url


@pytest.fixture
def topic(stack):
    with fresh_topic(stack.bootstrap) as name:
        yield name


@pytest.fixture
def service():
    started: list[TrackerService] = []

    def start(cfg: TrackerConfig, serve_api: bool = True) -> TrackerService:
        svc = TrackerService(cfg, serve_api=serve_api)
        svc.start()
        started.append(svc)
        return svc
    yield start
    for svc in started:
        svc.stop()


def partition_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT tableoid::regclass::text, count(*) FROM positions GROUP BY 1").fetchall()
    return {name.rsplit(".", 1)[-1]: n for name, n in rows}


def test_each_batch_is_committed_across_many_maintenance_passes(stack, db, topic, service):
    # GIVEN a tracker whose maintenance pass runs every 0.3 s (hourly by default: the pass after which
    # every write used to stay uncommitted)
    svc = service(tracker_config(stack.bootstrap, db, topic, maintenance_interval_s=0.3, retention_days=0, batch_linger_s=0.1),
                  serve_api=False)
    t0 = float(int(time.time()) - 300)
    expected = 0
    for tick in range(6):
        # WHEN tick after tick arrives, one of them on a day that has no partition yet
        base = PAST_DAY if tick == 3 else t0
        produce(stack.bootstrap, topic, [state(n, tick, base) for n in range(150)])
        expected += 150
        # THEN another connection sees every row of the tick, committed
        wait_for(lambda: count(db) == expected, 30, interval_s=0.2, what=f"{expected} committed rows after tick {tick}")
        time.sleep(0.4)  # at least one maintenance pass between two ticks
    assert svc.stats.maintenance_passes >= 6
    assert "positions_p20211007" in partition_counts(db)


def _export(tmp_path: Path, name: str, start: int, aircraft: int, ticks: int) -> Path:
    """A synthetic fleet's states written to CSV on simulated time, as `make produce ARGS=--export-csv` does."""
    path = tmp_path / f"{name}.csv"
    subprocess.run([sys.executable, "-m", "producer", "--source", "synthetic", "--aircraft", str(aircraft),
                    "--max-ticks", str(ticks), "--interval", "10", "--start-time", str(start),
                    "--export-csv", str(path)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return path


def _replay(stack, topic: str, path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap}
    subprocess.run([sys.executable, "-m", "producer", "--source", "replay", "--replay", str(path), "--topic", topic,
                    "--batch-delay", "0"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_a_past_day_and_today_then_sigterm_leave_exactly_the_topics_distinct_positions(stack, db, topic, tracker_procs,
                                                                                         tmp_path):
    # GIVEN 1,000 synthetic aircraft for 6 ticks on 2021-10-07 and 6 ticks today, in the topic
    _replay(stack, topic, _export(tmp_path, "past", PAST_DAY, 1000, 6))
    _replay(stack, topic, _export(tmp_path, "today", int(time.time()) - 120, 1000, 6))
    in_kafka = topic_positions(stack.bootstrap, topic)
    distinct = set(in_kafka.values())
    assert len(in_kafka) >= 11_000
    # WHEN a tracker keeping every day, with its maintenance pass every 1 s, consumes it while /track is asked
    port = free_port()
    log = tmp_path / "tracker.log"
    tracker_procs.append(spawn_tracker(stack.bootstrap, db, topic, log, api_port=port, TRACKER_RETENTION_DAYS=0,
                        TRACKER_MAINTENANCE_INTERVAL_S=1, TRACKER_BATCH_SIZE=1000))
    icao_past = next(k[0] for k in distinct if k[1] < PAST_DAY + 86400)
    answers = []

    def ask():
        while tracker_procs[0].poll() is None and len(answers) < 400:
            started = time.monotonic()
            try:
                r = requests.get(f"http://127.0.0.1:{port}/flights/{icao_past}/track?limit=10000", timeout=5)
                answers.append((r.status_code, time.monotonic() - started, len(r.json().get("points", []))))
            except requests.RequestException:
                pass  # not listening yet
            time.sleep(0.05)
    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    wait_for(lambda: count(db) == len(distinct), 120, what=f"{len(distinct)} rows")
    time.sleep(3)  # a few more maintenance passes with nothing to write
    tracker_procs[0].send_signal(signal.SIGTERM)
    assert tracker_procs[0].wait(60) == 0
    asker.join(10)
    # THEN PostgreSQL holds exactly the distinct positions of the topic, in both days' partitions
    assert keys(db) == distinct
    parts = partition_counts(db)
    assert parts.get("positions_p20211007", 0) > 0 and len(parts) >= 2
    # AND /track answered (200, within a second) during the run, the past day's track included
    ok = [a for a in answers if a[0] == 200]
    assert ok, f"no /track answer during the run: {answers[:5]}"
    assert max(seconds for _, seconds, _ in ok) < 1.0
    assert max(points for _, _, points in ok) >= 6
    assert "maintenance pass failed" not in log.read_text()


def test_a_past_day_under_the_default_retention_is_counted_not_stored(stack, db, topic, service, tmp_path, caplog):
    # GIVEN 2021-10-07 positions and today's, in the topic
    past = [state(n, tick, PAST_DAY) for tick in range(3) for n in range(100)]
    t0 = float(int(time.time()) - 60)
    today = [state(n, tick, t0) for tick in range(2) for n in range(100)]
    produce(stack.bootstrap, topic, past + today)
    # WHEN a tracker with the default retention (7 days) consumes them
    svc = service(tracker_config(stack.bootstrap, db, topic, api_port=0))
    wait_for(lambda: svc.stats.consumer_lag == 0 and svc.stats.consumed == 500, 60, what="all 500 consumed")
    stats = requests.get(f"{svc.url}stats", timeout=5).json()
    # THEN today's positions are stored, the past day's counted as past_retention (not stored, no partition)
    assert count(db) == 200
    assert keys(db) == {(s["icao24"], s["time_position"]) for s in today}
    assert stats["past_retention"] == 300 and stats["positions_total"] == 200
    assert "positions_p20211007" not in partition_counts(db)
    said = [r.getMessage() for r in caplog.records if "retention window" in r.getMessage()]
    assert len(said) == 1 and "TRACKER_RETENTION_DAYS=0" in said[0]


def test_positions_across_utc_midnight_land_in_both_day_partitions(stack, db, topic, service):
    # GIVEN positions from 30 s before to 30 s after the last UTC midnight
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    states = [state(n, tick, midnight - 30) for tick in range(0, 60, 5) for n in range(50)]
    produce(stack.bootstrap, topic, states)
    # WHEN the tracker stores them
    service(tracker_config(stack.bootstrap, db, topic, batch_linger_s=0.1), serve_api=False)
    wait_for(lambda: count(db) == len(states), 60, what=f"{len(states)} rows")
    # THEN each lands in its own day's partition, none lost at the boundary
    before = datetime.fromtimestamp(midnight - 1, timezone.utc).strftime("positions_p%Y%m%d")
    after = datetime.fromtimestamp(midnight, timezone.utc).strftime("positions_p%Y%m%d")
    parts = partition_counts(db)
    assert parts[before] == 50 * 6 and parts[after] == 50 * 6
    assert keys(db) == {(s["icao24"], s["time_position"]) for s in states}


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_every_committed_offsets_position_stored_once(stack, db, topic, tracker_procs,
                                                                                     tmp_path):
    rng = random.Random(20)
    t0 = float(int(time.time()) - 600)
    group = f"it-{topic}"
    log = tmp_path / "tracker.log"
    stop = threading.Event()

    def producing():
        for tick in range(40):
            if stop.is_set():
                return
            produce(stack.bootstrap, topic, [state(n, tick, t0) for n in range(150)])
            time.sleep(0.15)
    producer = threading.Thread(target=producing, daemon=True)
    producer.start()
    try:
        for kill in range(4):
            # GIVEN a tracker (maintenance every 0.5 s) consuming while records keep arriving
            tracker_procs.append(spawn_tracker(stack.bootstrap, db, topic, log, TRACKER_BATCH_SIZE=300, TRACKER_MAINTENANCE_INTERVAL_S=0.5,
                                TRACKER_BATCH_LINGER_S=0.2))
            wait_for(lambda: count(db) > 0 and committed_offsets(stack.bootstrap, group, topic), 60,
                     what="a first committed batch")
            # WHEN it is killed with SIGKILL at a random point
            time.sleep(rng.uniform(0.2, 2.5))
            tracker_procs[-1].send_signal(signal.SIGKILL)
            tracker_procs[-1].wait(10)
            # THEN every position below the committed offsets is in PostgreSQL (committed before its offset)
            committed = committed_offsets(stack.bootstrap, group, topic)
            in_kafka = topic_positions(stack.bootstrap, topic)
            owed = {k for (p, o), k in in_kafka.items() if o < committed.get(p, 0)}
            stored = keys(db)
            assert owed <= stored, f"kill {kill}: {len(owed - stored)} committed positions missing"
    finally:
        stop.set()
        producer.join(60)
    # AND a last run brings the rows to exactly the distinct positions of the topic, none doubled
    tracker_procs.append(spawn_tracker(stack.bootstrap, db, topic, log, TRACKER_MAINTENANCE_INTERVAL_S=0.5))
    distinct = set(topic_positions(stack.bootstrap, topic).values())
    wait_for(lambda: count(db) == len(distinct), 90, what=f"{len(distinct)} rows")
    tracker_procs[-1].send_signal(signal.SIGTERM)
    assert tracker_procs[-1].wait(60) == 0
    assert count(db) == len(distinct) and keys(db) == distinct


def test_track_answers_within_a_second_while_the_writer_creates_partitions(stack, db, topic, service):
    # GIVEN a tracker serving the API with an aircraft already stored
    svc = service(tracker_config(stack.bootstrap, db, topic, api_port=0, retention_days=0, batch_size=100, batch_linger_s=0.05))
    now = float(int(time.time()) - 30)
    produce(stack.bootstrap, topic, [state(1, 0, now)])
    wait_for(lambda: count(db) == 1, 30, what="the first row")
    # WHEN records of 60 past days arrive, each needing a partition of its own (DDL on positions)
    times = []
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            started = time.monotonic()
            r = requests.get(f"{svc.url}flights/{0xa00001:06x}/track", timeout=10)
            times.append((r.status_code, time.monotonic() - started))
    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    produce(stack.bootstrap, topic, [state(n, 0, PAST_DAY + day * 86400) for day in range(60) for n in range(2, 102)])
    wait_for(lambda: count(db) == 1 + 6000, 90, what="6001 rows")
    stop.set()
    asker.join(15)
    # THEN /track answered every time, within a second
    assert svc.consumer._writer.partitions_created >= 60
    assert len(times) > 10 and {code for code, _ in times} == {200}
    assert max(seconds for _, seconds in times) < 1.0, sorted(s for _, s in times)[-5:]


def test_a_query_stuck_behind_a_lock_answers_503_with_the_reason(stack, db, topic, service):
    # GIVEN a tracker with its API (lock_timeout 0.5 s) and someone holding an exclusive lock on positions
    svc = service(tracker_config(stack.bootstrap, db, topic, api_port=0, api_lock_timeout_s=0.5))
    wait_for(lambda: svc.consumer._writer is not None, 30, what="the schema")
    with psycopg.connect(db) as locker:
        locker.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
        # WHEN /track needs positions
        started = time.monotonic()
        r = requests.get(f"{svc.url}flights/abcdef/track", timeout=10)
        took = time.monotonic() - started
    # THEN it answers 503 with the reason at once instead of hanging
    assert r.status_code == 503, r.text
    assert "lock_timeout" in r.json()["detail"] and r.headers["Retry-After"] == "1"
    assert took < 3
    # AND once the lock is gone it answers again
    assert requests.get(f"{svc.url}flights/abcdef/track", timeout=10).status_code == 404
