"""The archiver against the real stack: the broker, the project's PostgreSQL as the Iceberg catalog and the
endpoint's S3 as the warehouse. Each test has its own topic, namespace and warehouse prefix.

- N records (JSON and Protobuf, a repeated position, malformed ones) archived: rows == distinct positions
  in what Kafka holds, read back with PyIceberg; the malformed ones in the rejects table with their reason;
  SIGTERM commits what is buffered and exits 0; the group's offsets (the lag tools' hint) == the table's.
- kill -9 at random points while records keep arriving, then a restart: no row lost or doubled.
- The archive rate (rows/s, CPU per row) measured in-process.
"""
from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import boto3
import pytest
from kafka import KafkaProducer
from pyiceberg.exceptions import NoSuchTableError

from archiver.archiver import Archiver
from archiver.settings import ArchiverConfig
from infra.lake.create import ensure_bucket
from lakehouse.catalog import committed_offsets, load_catalog, rejects_identifier
from lakehouse.settings import LakeSettings, sqlalchemy_url
from pipeline_common.state_codec import CONTENT_TYPE_HEADER, PROTOBUF, encode_state
from tracker_support import committed_offsets as group_offsets
from tracker_support import fresh_topic, state, topic_positions, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_765_065_590  # 2025-12-06 23:59:50 UTC: the positions cross midnight, two day partitions (whole
# seconds: Protobuf's times are integers)
BUCKET = "flightpipe-lake"


@pytest.fixture
def lake(stack, database_url):
    """A namespace of its own in the real catalog (PostgreSQL) and a warehouse prefix of its own on S3."""
    suffix = uuid.uuid4().hex[:8]
    settings = LakeSettings.from_env(os.environ, catalog_uri=sqlalchemy_url(database_url),
                                     warehouse=f"s3://{BUCKET}/it-archiver-{suffix}", namespace=f"it_archiver_{suffix}",
                                     group_id=f"it-archiver-{suffix}")
    ensure_bucket(settings)
    yield settings
    catalog = load_catalog(settings)
    if (settings.namespace,) in catalog.list_namespaces():
        for identifier in catalog.list_tables(settings.namespace):
            catalog.drop_table(identifier)
        catalog.drop_namespace(settings.namespace)
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"it-archiver-{suffix}/"):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def env_for(settings: LakeSettings, topic: str, **extra: str) -> dict:
    return {**os.environ, "KAFKA_TOPIC": topic, "LAKE_CATALOG_URI": settings.catalog_url,
            "LAKE_WAREHOUSE": settings.warehouse, "LAKE_NAMESPACE": settings.namespace,
            "LAKE_GROUP_ID": settings.group_id, "LOG_FORMAT": "json", "ARCHIVER_STATUS_INTERVAL_S": "1", **extra}


def produce(bootstrap: str, topic: str, aircraft: int, ticks: range, malformed_every: int = 0) -> int:
    """States of `aircraft` aircraft for `ticks`, every third as Protobuf, one position of each tick sent
    twice, and a malformed record every `malformed_every` records; returns how many records were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    sent = 0
    try:
        for tick in ticks:
            for n in range(aircraft):
                s = state(n, tick, T0)
                if (n + tick) % 3 == 0:
                    producer.send(topic, key=s["icao24"].encode(), value=encode_state(s, PROTOBUF),
                                  headers=[(CONTENT_TYPE_HEADER, PROTOBUF.encode())])
                else:
                    producer.send(topic, key=s["icao24"].encode(), value=encode_state(s))
                sent += 1
                if malformed_every and sent % malformed_every == 0:
                    producer.send(topic, key=b"bad", value=b'{"icao24": "not hex", "time_position": 1}')
                    sent += 1
            producer.send(topic, key=s["icao24"].encode(), value=encode_state(s))  # the last one, once more
            sent += 1
        producer.flush(60)
    finally:
        producer.close()
    return sent


def read_lake(settings: LakeSettings):
    catalog = load_catalog(settings)
    positions = catalog.load_table(settings.identifier)
    rejects = catalog.load_table(rejects_identifier(settings))
    return positions, positions.scan().to_arrow(), rejects.scan().to_arrow()


def archived(settings: LakeSettings) -> int:
    """Rows in the table now (0 until the archiver has created it)."""
    try:
        return read_lake(settings)[1].num_rows
    except NoSuchTableError:
        return 0


def lake_keys(rows) -> Counter:
    return Counter(zip(rows.column("icao24").to_pylist(),
                       (t.timestamp() for t in rows.column("time_position").to_pylist())))


def expected(stack, topic: str) -> tuple[set, set]:
    """What Kafka holds: the distinct (icao24, epoch) positions, and the (partition, offset) of the rest."""
    from infra.demo.observe import read_topic
    from pipeline_common.kafka_client import KafkaSettings
    good = topic_positions(stack.bootstrap, topic)
    everything = {(r.partition, r.offset) for r in read_topic(KafkaSettings.from_env(), topic)}
    return set(good.values()), everything - set(good)


def start_archiver(env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "a")
    try:
        return subprocess.Popen([sys.executable, "-m", "archiver"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()


def test_records_are_archived_once_with_rejects_kept_and_sigterm_commits_the_rest(stack, lake, tmp_path):
    log = tmp_path / "archiver.log"
    with fresh_topic(stack.bootstrap) as topic:
        # GIVEN JSON and Protobuf records of 200 aircraft over 12 ticks, repeats and malformed ones
        produce(stack.bootstrap, topic, 200, range(12), malformed_every=500)
        positions, bad = expected(stack, topic)
        assert len(positions) == 200 * 12 and bad
        # WHEN the archiver runs with commits smaller than the topic
        proc = start_archiver(env_for(lake, topic, LAKE_COMMIT_ROWS="700", LAKE_COMMIT_INTERVAL_S="2"), log)
        try:
            wait_for(lambda: archived(lake) == len(positions), 180, 1.0, "every position archived")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
            # ... and, restarted with an interval longer than the test, it gets a few more records and SIGTERM
            assert produce(stack.bootstrap, topic, 5, range(100, 101)) == 6
            proc = start_archiver(env_for(lake, topic, LAKE_COMMIT_INTERVAL_S="3600"), log)
            wait_for(lambda: '"pending": 6' in log.read_text(), 120, 0.5, "the new records buffered")
            assert read_lake(lake)[1].num_rows == len(positions)  # not committed yet
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                print(log.read_text()[-4000:])
        positions, bad = expected(stack, topic)
        table, rows, rejects = read_lake(lake)
        # THEN every distinct position is a row, once, read back with PyIceberg (the SIGTERM committed the last 5)
        keys = lake_keys(rows)
        days = table.inspect.partitions().column("partition").to_pylist()
        assert sorted(d["time_position_day"] for d in days) == [date(2025, 12, 6), date(2025, 12, 7)]
        assert len(positions) == 200 * 12 + 5
        assert max(keys.values()) == 1 and set(keys) == positions
        # ... the malformed records are kept with their reason
        assert {(p, o) for p, o in zip(rejects.column("partition").to_pylist(), rejects.column("offset").to_pylist())} == bad
        assert all("icao24" in r for r in rejects.column("reason").to_pylist())
        # ... and the group's offsets, a hint for lag tools, are the table's
        assert group_offsets(stack.bootstrap, lake.group_id, topic) == committed_offsets(table, topic)
        text = log.read_text()
        assert '"msg": "status: ' in text and text.count("archiver stopped") == 2


def test_kill_9_at_random_points_loses_and_doubles_nothing(stack, lake, tmp_path):
    rng = random.Random(int(os.environ.get("KILL_SEED", "22")))
    with fresh_topic(stack.bootstrap) as topic:
        produce(stack.bootstrap, topic, 300, range(10), malformed_every=997)
        env = env_for(lake, topic, LAKE_COMMIT_ROWS="800", LAKE_COMMIT_INTERVAL_S="1")
        log = tmp_path / "archiver.log"
        # GIVEN records still arriving while the archiver is killed (SIGKILL) at random moments, 6 times
        more = threading.Thread(target=produce, args=(stack.bootstrap, topic, 300, range(10, 30), 997))
        more.start()
        kills = 0
        try:
            for i in range(6):
                proc = start_archiver(env, log)
                # killed once it has resumed from the table, somewhere in its polling, decoding and commits
                wait_for(lambda: log.read_text().count('"msg": "archiving ') > i, 120, 0.2, "the archiver started")
                time.sleep(rng.uniform(0.2, 4.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                kills += 1
        finally:
            more.join(timeout=300)
        # WHEN it is started once more and left to catch up
        proc = start_archiver(env, log)
        try:
            positions, bad = expected(stack, topic)
            wait_for(lambda: archived(lake) >= len(positions), 300, 2.0, "the archiver to catch up")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        # THEN each distinct position Kafka holds is exactly one row, each malformed record one reject
        text = log.read_text()
        starts, statuses = text.count('"msg": "archiving '), text.count('"msg": "status: ')
        print(f"\n{starts} starts, {statuses} status lines, {text.count('archiver stopped')} clean stops")
        table, rows, rejects = read_lake(lake)
        print(f"{len(table.snapshots())} commits in the table, {rows.num_rows} rows, {rejects.num_rows} rejects")
        keys = lake_keys(rows)
        assert kills == 6 and len(positions) == 300 * 30
        assert [k for k, n in keys.items() if n > 1] == [] and set(keys) == positions
        reject_keys = Counter(zip(rejects.column("partition").to_pylist(), rejects.column("offset").to_pylist()))
        assert max(reject_keys.values()) == 1 and set(reject_keys) == bad


def test_archive_rate(stack, lake):
    """The archive throughput and CPU per position, in-process (what docs/BENCHMARKS.md would quote)."""
    with fresh_topic(stack.bootstrap, partitions=3) as topic:
        sent = produce(stack.bootstrap, topic, 2000, range(30))
        config = ArchiverConfig.from_env(os.environ, topic=topic, lake=LakeSettings.from_env(
            os.environ, catalog_uri=lake.catalog_url, warehouse=lake.warehouse, namespace=lake.namespace,
            group_id=lake.group_id, commit_rows=20_000, commit_interval_s=60))
        stop = threading.Event()
        archiver = Archiver(config)

        def stop_when_all_consumed():
            try:
                wait_for(lambda: archiver.stats.consumed >= sent, 300, 0.2, "all consumed")
            finally:
                stop.set()
        watcher = threading.Thread(target=stop_when_all_consumed, daemon=True)
        wall0, usage0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        watcher.start()
        stats = archiver.run(stop)
        wall, usage = time.perf_counter() - wall0, resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        rows = read_lake(lake)[1].num_rows
        assert rows == stats.rows == 2000 * 30
        rate, cpu_us = rows / wall, cpu / rows * 1e6
        print(f"\narchive: {rows} rows in {wall:.1f}s wall = {rate:,.0f} rows/s; CPU {cpu:.1f}s = {cpu_us:.1f} µs/row "
              f"(decode, Arrow, sort, Parquet, commit; S3 and PostgreSQL not included); {stats.commits} commits; "
              f"load {os.getloadavg()[0]:.1f}")
