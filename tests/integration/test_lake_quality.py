"""The data-quality checks (lakehouse.quality) and `python -m tracker.maintain` on the real stack: records produced
to a fresh topic on the real broker, read back and decoded as the tracker and the archiver decode them, stored in
PostgreSQL (an isolated schema) by the tracker's writer and in a fresh lake namespace (the stack's catalog and S3)
as the archiver commits them, silver and gold built by lakehouse.gold; then bad data is planted and each check
must fail with its reason, expected and found."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from archiver.batch import positions_table
from lake_support import fresh_lake
from lakehouse import gold
from lakehouse.catalog import OFFSETS_PROPERTY, encode_offsets
from lakehouse.quality import QualityCheckFailed, require_ok, run_checks
from lakehouse.settings import QualitySettings, sqlalchemy_url
from tracker import store
from tracker_support import fresh_topic, isolated_schema, state, stored_positions

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
AIRCRAFT, TICKS = 20, 15
SETTLED = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)   # "now" for the checks: the day is over and settled


@pytest.fixture(scope="module")
def sources(stack, database_url):
    """(topic, PostgreSQL schema URL, positions) holding the same 300 positions of DAY, plus 5 of the next day."""
    values = [state(n, tick, T0.timestamp()) for n in range(AIRCRAFT) for tick in range(TICKS)]
    values += [state(n, 0, (T0 + timedelta(days=1)).timestamp()) for n in range(5)]   # another day: not counted
    with fresh_topic(stack.bootstrap, partitions=2) as topic, isolated_schema(database_url) as db:
        positions = stored_positions(stack.bootstrap, topic, db, values, "it-quality")
        yield topic, db, positions


@contextmanager
def lake_of(database_url: str, positions: list, topic: str, build: bool = True):
    """A fresh lake holding ``positions`` as one archiver commit (with the topic's offsets), silver and gold of
    DAY built; yields (lake settings, catalog)."""
    with fresh_lake(database_url) as (settings, catalog, table):
        rows, _ = positions_table(positions, datetime.now(timezone.utc))
        ends: dict[int, int] = {}
        for p in positions:
            ends[p.kafka_partition] = max(ends.get(p.kafka_partition, 0), p.kafka_offset + 1)
        table.append(rows, snapshot_properties={OFFSETS_PROPERTY: encode_offsets(topic, ends)})
        if build:
            gold.build_day(settings, DAY, catalog=catalog)
        yield settings, catalog


def quality_settings(lake, db: str, topic: str, bootstrap: str) -> QualitySettings:
    """The lake's catalog where fresh_lake made it, the positions in the test's schema, the test's topic."""
    lake = dataclasses.replace(lake, catalog_uri=sqlalchemy_url(os.environ["DATABASE_URL"]), database_url=db)
    return QualitySettings.from_env(lake=lake, topic=topic, kafka={"bootstrap_servers": bootstrap})


def by_name(results):
    return {r.name: r for r in results}


def of_day(positions):
    """The positions of DAY in the order Kafka gave them back (partition by partition)."""
    return [p for p in positions if p.time_position.date() == DAY]


def test_every_check_passes_on_consistent_data(stack, database_url, sources):
    topic, db, positions = sources
    with lake_of(database_url, positions, topic) as (lake, _):
        results = by_name(run_checks(DAY, quality_settings(lake, db, topic, stack.bootstrap), now=SETTLED))

    assert all(r.ok for r in results.values()), [r.line() for r in results.values()]
    expected = AIRCRAFT * TICKS
    assert (results["rows.lake_vs_postgresql"].expected, results["rows.lake_vs_postgresql"].found) == (expected, expected)
    kafka = results["rows.lake_vs_kafka"]
    assert not kafka.skipped and (kafka.expected, kafka.found) == (expected, expected)
    assert (results["duplicates.lake"].found, results["duplicates.postgresql"].found) == (0, 0)
    assert results["values.silver"].found == "0 rows"
    assert results["values.cleaning"].found == f"{expected} in positions_clean"
    assert results["freshness.lake"].skipped and "not today" in results["freshness.lake"].detail


def test_freshness_on_a_clock_inside_the_day(stack, database_url, sources):
    # GIVEN the day's newest position at 10:00:14 (+ up to 14 s of tick) WHEN checked as if it were today
    topic, db, positions = sources
    newest = max(p.time_position for p in positions if p.time_position.date() == DAY)
    with lake_of(database_url, positions, topic, build=False) as (lake, _):
        settings = quality_settings(lake, db, topic, stack.bootstrap)
        fresh = by_name(run_checks(DAY, settings, "freshness", now=newest + timedelta(seconds=60)))
        stale = run_checks(DAY, settings, "freshness", now=newest + timedelta(seconds=settings.freshness_s + 60))

    # THEN a minute later both stores are fresh, and past QUALITY_FRESHNESS_S both fail with the position's age
    assert all(r.ok and not r.skipped for r in fresh.values()), [r.line() for r in fresh.values()]
    assert fresh["freshness.lake"].found == "60 s old"
    with pytest.raises(QualityCheckFailed) as failed:
        require_ok(stale, DAY)
    message = str(failed.value)
    assert f"freshness.lake: expected newest position younger than {settings.freshness_s:g} s, found " \
           f"{settings.freshness_s + 60:.0f} s old" in message
    assert "freshness.postgresql: expected" in message


def test_a_planted_duplicate_row_fails_the_duplicate_check_and_says_which(stack, database_url, sources):
    topic, db, positions = sources
    first = of_day(positions)[0]
    with lake_of(database_url, positions, topic, build=False) as (lake, catalog):
        # GIVEN a second row of one key appended to the lake (as a doubled archiver commit would leave it)
        copy = first._replace(kafka_offset=first.kafka_offset + 1_000_000, callsign="DUP")
        rows, _ = positions_table([copy], datetime.now(timezone.utc))
        catalog.load_table(lake.identifier).append(rows)
        settings = quality_settings(lake, db, topic, stack.bootstrap)
        # WHEN the duplicate checks run, in code and as the command the DAG's task runs
        results = run_checks(DAY, settings, "duplicates", now=SETTLED)
        env = dict(os.environ, DATABASE_URL=db, LAKE_CATALOG_URI=settings.lake.catalog_uri, KAFKA_TOPIC=topic,
                   LAKE_NAMESPACE=lake.namespace, KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap)
        cli = subprocess.run([sys.executable, "-m", "lakehouse.quality", "--day", DAY.isoformat(),
                              "--checks", "duplicates"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)

    # THEN the lake's check fails: expected 0, found 1, naming the key; PostgreSQL's (primary key) passes
    with pytest.raises(QualityCheckFailed) as failed:
        require_ok(results, DAY)
    key = f"{first.icao24} {first.time_position.isoformat().replace('+00:00', 'Z')} x2"
    assert str(failed.value).startswith(f"1 of 2 data-quality checks failed for {DAY}:\n  duplicates.lake: "
                                         f"expected 0, found 1 (")
    assert key in str(failed.value)
    assert [r.name for r in failed.value.failures] == ["duplicates.lake"]
    assert cli.returncode == 1, cli.stdout + cli.stderr
    line = next(x for x in cli.stdout.splitlines() if "duplicates.lake" in x)
    assert "FAILED" in line and "expected 0  found 1" in line and key in line
    assert "duplicates.postgresql" in cli.stdout and "duplicates.lake: expected 0, found 1" in cli.stderr


def test_an_altitude_of_90000_m_is_removed_by_cleaning_and_fails_only_when_it_reaches_silver(
        stack, database_url, sources):
    topic, db, positions = sources
    # GIVEN a raw position at 90,000 m (a decoding error: positions_clean's bound is 18,300 m) in the lake
    base = of_day(positions)[0]
    wild = base._replace(time_position=T0 + timedelta(hours=3), baro_altitude=90_000.0, kafka_offset=10**9)
    with lake_of(database_url, [*positions, wild], topic) as (lake, catalog):
        settings = quality_settings(lake, db, topic, stack.bootstrap)
        # WHEN the values checks run on what `make lake-gold` built
        cleaned = by_name(run_checks(DAY, settings, "values", now=SETTLED))
        # ... and after a row at 90,000 m is written into silver behind the cleaning's back
        escaped = base._replace(time_position=T0 + timedelta(hours=4), baro_altitude=90_000.0)
        silver_row = pa.Table.from_pylist([{k: getattr(escaped, k) for k in gold.SCHEMAS[gold.SILVER].names}],
                                          schema=gold.SCHEMAS[gold.SILVER])
        catalog.load_table((lake.namespace, gold.SILVER)).append(silver_row)
        polluted = run_checks(DAY, settings, "values", now=SETTLED)

    # THEN the raw row is no failure: silver has none, and the removal is reported with its rule
    assert all(r.ok for r in cleaned.values()), [r.line() for r in cleaned.values()]
    assert "`(baro_altitude IS NULL OR baro_altitude BETWEEN -460 AND 18300)`: 1" in cleaned["values.cleaning"].detail
    assert "cleaning removed 1 of 301 raw rows" in cleaned["values.cleaning"].detail
    # ... but the silver row fails values.silver with the rule it breaks and the value, and silver no longer
    # matches the raw day's clean rows
    with pytest.raises(QualityCheckFailed) as failed:
        require_ok(polluted, DAY)
    message = str(failed.value)
    assert "values.silver: expected 0 rows breaking a positions_clean rule, found 1 rows" in message
    assert "1 break `(baro_altitude IS NULL OR baro_altitude BETWEEN -460 AND 18300)`" in message
    assert "baro_altitude=90000.0" in message and base.icao24 in message
    assert "values.cleaning: expected 300 clean rows, found 301 in positions_clean" in message


def test_a_lake_missing_a_position_fails_the_row_counts_with_both_counts(stack, database_url, sources):
    topic, db, positions = sources
    # GIVEN a lake that lost one position of the day PostgreSQL and Kafka both have
    lost = of_day(positions)[7]
    with lake_of(database_url, [p for p in positions if p is not lost], topic, build=False) as (lake, _):
        results = run_checks(DAY, quality_settings(lake, db, topic, stack.bootstrap), "rows", now=SETTLED)

    with pytest.raises(QualityCheckFailed) as failed:
        require_ok(results, DAY)
    message = str(failed.value)
    total = AIRCRAFT * TICKS
    assert f"rows.lake_vs_postgresql: expected {total - 1}, found {total} (distinct positions of {DAY}: " \
           f"lake {total - 1}, PostgreSQL {total})" in message
    assert f"rows.lake_vs_kafka: expected {total}, found {total - 1}" in message
    assert f"not in the lake, e.g. {lost.icao24} {lost.time_position.isoformat().replace('+00:00', 'Z')}" in message


def test_postgresql_past_retention_and_a_topic_that_lost_the_day_are_skipped_not_failed(stack, database_url, sources):
    topic, db, positions = sources
    with lake_of(database_url, positions, topic, build=False) as (lake, _):
        settings = quality_settings(lake, db, topic, stack.bootstrap)
        late = run_checks(DAY, dataclasses.replace(settings, retention_days=7), "rows",
                          now=SETTLED + timedelta(days=30))
    by = by_name(late)
    assert by["rows.lake_vs_postgresql"].skipped and "TRACKER_RETENTION_DAYS=7" in by["rows.lake_vs_postgresql"].detail
    assert not by["rows.lake_vs_kafka"].skipped and by["rows.lake_vs_kafka"].ok   # a fresh topic lost nothing


# ------------------------------------------------------------------ tracker.maintain

def test_tracker_maintain_drops_partitions_past_retention(database_url):
    today = datetime.now(timezone.utc).date()
    old = [today - timedelta(days=30), today - timedelta(days=8)]
    with isolated_schema(database_url) as db:
        with store.connect(db, "it-maintain") as conn:
            store.migrate(conn)
            store.ensure_partitions(conn, [*old, today - timedelta(days=7), today])
        env = dict(os.environ, DATABASE_URL=db, TRACKER_RETENTION_DAYS="7", TRACKER_PARTITIONS_AHEAD_DAYS="2")

        dry = subprocess.run([sys.executable, "-m", "tracker.maintain", "--dry-run"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        with store.connect(db, "it-maintain-reader") as conn:
            after_dry = store.partitions(conn)
        done = subprocess.run([sys.executable, "-m", "tracker.maintain"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        with store.connect(db, "it-maintain-reader") as conn:   # another connection: committed
            after = store.partitions(conn)

    names = ", ".join(store.partition_name(d) for d in old)
    assert dry.returncode == 0, dry.stderr
    assert f"(dry run) would drop 2 partition(s): {names}" in dry.stdout
    assert after_dry == sorted([*old, today - timedelta(days=7), today])   # a dry run changes nothing
    assert done.returncode == 0, done.stderr
    assert f"tracker-maintain: dropped 2 partition(s): {names}" in done.stdout
    assert "created 2 partition(s)" in done.stdout
    assert after == [today - timedelta(days=7)] + [today + timedelta(days=n) for n in range(3)]
