"""tracker.store against the real PostgreSQL: migrations applied once, day partitions, retention by
dropping partitions, and the writer's exact path for a batch that holds an already stored row."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from saved_events import load_event
from tracker import store
from tracker.records import decode
from tracker_support import isolated_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(database_url):
    with isolated_schema(database_url) as url, store.connect(url, "it-tracker-store") as c:
        yield c


def position(icao24: str, when: datetime, offset: int = 0):
    s = load_event("raw_state.json")
    s.update(icao24=icao24, time_position=when.timestamp(), last_contact=when.timestamp())
    return decode(json.dumps(s).encode(), 0, offset)


def test_migrations_are_applied_once_and_recorded(conn):
    first = store.migrate(conn)
    assert first[:2] == ["0001_positions", "0002_tracker_rejects"]
    assert store.migrate(conn) == []  # a second start applies nothing
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [v for v, _ in store.migration_files()]


def test_positions_land_in_day_partitions_and_retention_drops_whole_old_days(conn):
    store.prepare(conn, retention_days=0, ahead_days=2)
    today = datetime.now(timezone.utc).date()
    assert store.partitions(conn)[-3:] == [today, today + timedelta(days=1), today + timedelta(days=2)]
    writer = store.PositionWriter(conn)
    old = datetime.combine(today - timedelta(days=10), datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=3)
    recent = datetime.now(timezone.utc) - timedelta(minutes=5)
    # GIVEN positions 10 days ago (a partition is created for them on demand) and 5 minutes ago
    assert writer.write([position("aaaaaa", old), position("bbbbbb", recent)]) == 2
    assert today - timedelta(days=10) in store.partitions(conn)
    # WHEN retention keeps 7 days THEN the old day's partition is gone with its row, the recent row stays
    dropped = store.apply_retention(conn, 7, today=today)
    assert dropped == [store.partition_name(today - timedelta(days=10))]
    assert [r[0] for r in conn.execute("SELECT icao24 FROM positions")] == ["bbbbbb"]
    assert today - timedelta(days=10) not in store.partitions(conn)


def test_a_batch_with_an_already_stored_row_adds_only_the_new_ones(conn):
    store.prepare(conn, retention_days=7, ahead_days=0)
    writer = store.PositionWriter(conn)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    first = [position("cccccc", now - timedelta(seconds=s), s) for s in range(10)]
    assert writer.write(first) == 10 and writer.slow_batches == 0
    # GIVEN a redelivery: 5 stored rows again plus 5 new ones, and one row twice in the same batch
    again = first[5:] + [position("cccccc", now + timedelta(seconds=s), 100 + s) for s in range(1, 6)]
    again.append(again[-1])
    # THEN the batch falls back to the exact path and stores the 5 new rows only
    assert writer.write(again) == 5 and writer.slow_batches == 1
    assert conn.execute("SELECT count(*) FROM positions").fetchone()[0] == 15


def other_count(url: str) -> int:
    """Rows as another connection sees them: committed ones only."""
    with psycopg.connect(url, autocommit=True) as other:
        return other.execute("SELECT count(*) FROM positions").fetchone()[0]


@pytest.fixture
def url_and_conn(database_url):
    with isolated_schema(database_url) as url, store.connect(url, "it-tracker-store") as c:
        yield url, c


def test_every_batch_is_visible_to_another_connection_across_maintenance_passes(url_and_conn):
    # GIVEN the writer's connection, which also runs the maintenance pass (the SELECTs that used to open a
    # transaction nothing committed, issue 20)
    url, conn = url_and_conn
    store.prepare(conn, retention_days=7, ahead_days=1)
    writer = store.PositionWriter(conn)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    total = 0
    for n in range(4):
        # WHEN a batch is written, then a maintenance pass runs, then a partition is created for a new day
        batch = [position(f"ab{n:02d}{i:02d}", now - timedelta(seconds=i), i) for i in range(20)]
        total += writer.write(batch)
        assert other_count(url) == total, f"batch {n} not committed"
        store.maintain(conn, 7, 1)
        writer.forget_partitions()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # THEN another connection sees every row at once, and no lock is left on positions
        assert other_count(url) == total
    yesterday = now - timedelta(days=1)
    total += writer.write([position("cdcdcd", yesterday)])
    assert other_count(url) == total == 81


def test_a_connection_outside_the_discipline_is_refused(database_url):
    with isolated_schema(database_url) as url, psycopg.connect(url) as plain:
        with pytest.raises(ValueError, match="autocommit=True"):
            store.migrate(plain)
        with pytest.raises(ValueError, match="autocommit=True"):
            store.PositionWriter(plain)


def test_a_day_partition_dropped_under_the_writer_is_created_again(url_and_conn):
    # GIVEN a writer that has written to today's partition
    url, conn = url_and_conn
    store.prepare(conn, retention_days=0, ahead_days=0)
    writer = store.PositionWriter(conn)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    assert writer.write([position("eeeeee", now)]) == 1
    # WHEN someone else (an operator, a scheduled job) drops that partition
    with psycopg.connect(url, autocommit=True) as other:
        other.execute(f"DROP TABLE {store.partition_name(now.date())}")
    # THEN the next batch creates it again and is stored, not rejected
    assert writer.write([position("ffffff", now)]) == 1
    assert other_count(url) == 1


def test_partition_ddl_waits_briefly_for_a_reader_and_retries(url_and_conn):
    # GIVEN a reader holding a lock on positions for 3 s (longer than the DDL's lock_timeout of 2 s)
    url, conn = url_and_conn
    store.prepare(conn, retention_days=0, ahead_days=0)
    import threading
    import time as _time
    held = threading.Event()

    def reader():
        with psycopg.connect(url) as other:  # a transaction that holds its lock until commit
            other.execute("LOCK TABLE positions IN ACCESS SHARE MODE")
            held.set()
            _time.sleep(3)
    thread = threading.Thread(target=reader)
    thread.start()
    held.wait(10)
    # WHEN a partition for a new day is needed THEN it is created once the reader is done
    day = date(2021, 10, 7)
    assert store.ensure_partitions(conn, [day]) == 1
    thread.join()
    assert day in store.partitions(conn)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
