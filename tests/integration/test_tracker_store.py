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
    with isolated_schema(database_url) as url, psycopg.connect(url) as c:
        yield c


def position(icao24: str, when: datetime, offset: int = 0):
    s = load_event("raw_state.json")
    s.update(icao24=icao24, time_position=when.timestamp(), last_contact=when.timestamp())
    return decode(json.dumps(s).encode(), 0, offset)


def test_migrations_are_applied_once_and_recorded(conn):
    first = store.migrate(conn)
    conn.commit()
    assert first[:2] == ["0001_positions", "0002_tracker_rejects"]
    assert store.migrate(conn) == []  # a second start applies nothing
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [v for v, _ in store.migration_files()]


def test_positions_land_in_day_partitions_and_retention_drops_whole_old_days(conn):
    store.prepare(conn, retention_days=0, ahead_days=2)
    conn.commit()
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
    conn.commit()
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
