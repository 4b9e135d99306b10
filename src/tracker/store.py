"""PostgreSQL side of the tracker: migrations, day partitions and retention, the bulk writer, and
the history queries the API needs. Every query is parameterised; identifiers we build ourselves
(partition names) come from dates, never from input.

Connection discipline: every connection that writes is opened with ``autocommit=True`` (``connect()``
below) and each unit of work (a batch, one partition's DDL, a maintenance pass's drop) is one explicit
``conn.transaction()`` that commits or rolls back as a whole when its block ends. Without autocommit, any
statement outside such a block (a SELECT of the partitions) silently opens a transaction that nothing
commits, every later ``transaction()`` becomes a mere savepoint inside it, and the rows written are lost
when the connection closes while the Kafka offsets are committed (issue 20). The writer refuses a
connection that is not in autocommit mode and checks, after each batch, that nothing is left open."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from .records import COLUMNS, Position

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_PARTITION_NAME = re.compile(r"^positions_p(\d{8})$")
# One advisory lock id for "migrating the tracker schema": two trackers starting at once take turns.
_MIGRATION_LOCK = 0x666c6967  # "flig"
# Creating a day partition locks `positions` against readers while it runs (milliseconds). It waits at most
# this long for a reader's lock and is then tried again, so a long read never queues every other reader
# behind the DDL.
_DDL_LOCK_TIMEOUT = "2s"
_DDL_TRIES = 5


class UncommittedWork(RuntimeError):
    """A unit of work ended with its connection still inside a transaction: nothing it wrote is durable."""


def connect(url: str, application_name: str, connect_timeout: int = 5) -> psycopg.Connection:
    """A connection in the store's discipline: autocommit, one explicit transaction per unit of work."""
    return psycopg.connect(url, connect_timeout=connect_timeout, application_name=application_name,
                           autocommit=True)


def _require_autocommit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        raise ValueError("tracker.store needs a connection with autocommit=True (store.connect()): without it "
                         "a plain SELECT opens a transaction that nothing commits and every write after it is lost")


def _require_idle(conn: psycopg.Connection, what: str) -> None:
    status = conn.info.transaction_status
    if status != psycopg.pq.TransactionStatus.IDLE:
        raise UncommittedWork(f"{what} left the connection {status.name} (a transaction still open): "
                              "its rows are not committed")


# --------------------------------------------------------------------------- migrations

def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of src/tracker/migrations/NNNN_name.sql, in order."""
    found = []
    for entry in MIGRATIONS.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet recorded in schema_migrations, in one transaction (all or none)."""
    _require_autocommit(conn)
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, text in migration_files():
            if version in done:
                continue
            with conn.transaction():
                conn.execute(text)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
            logger.info("applied migration %s", version)
    return applied_now


def is_hypertable(conn: psycopg.Connection) -> bool:
    # Read-only; on an autocommit connection it is a transaction of its own.
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')").fetchone()
    if not row[0]:
        return False
    return conn.execute("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
                        "WHERE hypertable_name = 'positions')").fetchone()[0]


# --------------------------------------------------------------------------- partitions

def partition_name(day: date) -> str:
    return f"positions_p{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def ensure_partitions(conn: psycopg.Connection, days) -> int:
    """Create the day partitions of `days` that do not exist yet (UTC days); returns how many it created.
    Each in a short transaction of its own: the lock on `positions` is held for milliseconds, never
    across a batch, and a partition is committed before any row is written to it."""
    _require_autocommit(conn)
    created = 0
    existing = set(partitions(conn))
    for day in sorted(set(days)):
        if day in existing:
            continue
        statement = sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF positions FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(partition_name(day)), sql.Literal(day_start(day)),
            sql.Literal(day_start(day + timedelta(days=1))))
        for attempt in range(1, _DDL_TRIES + 1):
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_DDL_LOCK_TIMEOUT)))
                    conn.execute(statement)
                break
            except psycopg.errors.LockNotAvailable:
                if attempt == _DDL_TRIES:
                    raise
                logger.info("partition %s: a reader holds positions for more than %s; trying again (%d/%d)",
                            partition_name(day), _DDL_LOCK_TIMEOUT, attempt, _DDL_TRIES)
        logger.info("created partition %s", partition_name(day))
        created += 1
    return created


def partitions(conn: psycopg.Connection) -> list[date]:
    """The days that have a partition of `positions`, oldest first."""
    # 'positions'::regclass is the table on the search path (tests give each run a schema of its own).
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'positions'::regclass").fetchall()
    days = []
    for (name,) in rows:
        match = _PARTITION_NAME.match(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def oldest_kept_day(retention_days: int, today: date | None = None) -> date | None:
    """The oldest UTC day retention keeps (None: TRACKER_RETENTION_DAYS=0 keeps everything). A position of
    an earlier day is past retention: the next maintenance pass would drop its partition."""
    if retention_days <= 0:
        return None
    return (today or datetime.now(timezone.utc).date()) - timedelta(days=retention_days)


def apply_retention(conn: psycopg.Connection, retention_days: int, today: date | None = None) -> list[str]:
    """Drop the day partitions (or TimescaleDB chunks) entirely older than `retention_days`. Never DELETE.
    Each drop is a transaction of its own."""
    _require_autocommit(conn)
    oldest_kept = oldest_kept_day(retention_days, today)
    if oldest_kept is None:
        return []
    if is_hypertable(conn):
        with conn.transaction():
            rows = conn.execute("SELECT drop_chunks('positions', older_than => %s::timestamptz)",
                                (day_start(oldest_kept),)).fetchall()
        return [r[0] for r in rows]
    dropped = []
    for day in partitions(conn):
        if day < oldest_kept:
            with conn.transaction():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition_name(day))))
            dropped.append(partition_name(day))
    if dropped:
        logger.info("retention: dropped %d partition(s) older than %s: %s", len(dropped), oldest_kept,
                    ", ".join(dropped))
    return dropped


def maintain(conn: psycopg.Connection, retention_days: int, ahead_days: int, today: date | None = None) -> list[str]:
    """The maintenance pass: partitions past retention dropped, today's and the next days' created.
    Every step commits on its own; the connection is idle afterwards (checked)."""
    dropped = apply_retention(conn, retention_days, today)
    if not is_hypertable(conn):
        today = today or datetime.now(timezone.utc).date()
        ensure_partitions(conn, [today + timedelta(days=n) for n in range(ahead_days + 1)])
    _require_idle(conn, "the maintenance pass")
    return dropped


def prepare(conn: psycopg.Connection, retention_days: int, ahead_days: int) -> None:
    """At start-up: schema up to date, partitions for today and the next days, old ones dropped."""
    migrate(conn)
    maintain(conn, retention_days, ahead_days)


# --------------------------------------------------------------------------- writer

@dataclass(frozen=True)
class Reject:
    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes | None


_STAGING = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS positions_staging "
                   "(LIKE positions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
_COLUMN_LIST = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
# Binary COPY: the server parses no text (timestamps and floats dominate a text COPY's cost).
_COPY = sql.SQL("COPY positions_staging ({}) FROM STDIN (FORMAT BINARY)").format(_COLUMN_LIST)
_COPY_DIRECT = sql.SQL("COPY positions ({}) FROM STDIN (FORMAT BINARY)").format(_COLUMN_LIST)
# The PostgreSQL types of Position's fields, in order (binary COPY needs them).
_COPY_TYPES = ("text", "timestamptz", "timestamptz", "text", "text", "float8", "float8", "float4", "float4", "bool",
               "float4", "float4", "float4", "text", "int2", "int2", "text", "int4", "int8")
assert len(_COPY_TYPES) == len(COLUMNS)
_MERGE = sql.SQL("INSERT INTO positions ({cols}) SELECT {cols} FROM positions_staging "
                 "ON CONFLICT (icao24, time_position) DO NOTHING").format(
    cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


class PositionWriter:
    """Writes one batch per transaction. Fast path: a binary COPY straight into `positions`, inside a
    savepoint. If any row of the batch is already stored (a redelivery after a crash, a record sent
    twice) the COPY fails as a whole on the primary key; the batch then goes the exact way: COPY into
    a session-local staging table and INSERT ... ON CONFLICT DO NOTHING, so no row is ever doubled."""

    def __init__(self, conn: psycopg.Connection) -> None:
        _require_autocommit(conn)
        self.conn = conn
        self._hypertable = is_hypertable(conn)
        self._days: set[date] = set() if self._hypertable else set(partitions(conn))
        self.slow_batches = 0
        self.partitions_created = 0
        conn.execute(_STAGING)  # autocommit: the (session-local) table exists from here on

    def _ensure_days(self, positions: list[Position]) -> None:
        """The day partitions this batch needs, each created and committed before the batch's transaction."""
        if self._hypertable or not positions:
            return
        days = {p.time_position.astimezone(timezone.utc).date() for p in positions} - self._days
        if days:
            self.partitions_created += ensure_partitions(self.conn, days)
            self._days |= days

    def forget_partitions(self) -> None:
        """Read the partitions again (after a maintenance pass, or when one was dropped under us)."""
        if not self._hypertable:
            self._days = set(partitions(self.conn))

    def _copy(self, cur: psycopg.Cursor, statement: sql.Composed, positions: list[Position]) -> None:
        with cur.copy(statement) as copy:
            copy.set_types(_COPY_TYPES)
            write = copy.write_row
            for p in positions:
                write(p)

    def write(self, positions: list[Position], rejects: list[Reject] = ()) -> int:
        """One transaction, committed when this returns (checked); returns the number of new rows (the rest
        were already stored)."""
        self._ensure_days(positions)
        try:
            inserted = self._write(positions, rejects)
        except psycopg.errors.CheckViolation as exc:
            # "no partition of relation positions found for row": a day partition this process believed in
            # was dropped by someone else (a maintenance job, an operator). Read them again, create, retry.
            if "no partition" not in str(exc):
                raise
            logger.warning("a day partition is missing (%s); creating it and writing the batch again",
                           str(exc).strip().splitlines()[0])
            self.forget_partitions()
            self._ensure_days(positions)
            inserted = self._write(positions, rejects)
        _require_idle(self.conn, "a batch")
        return inserted

    def _write(self, positions: list[Position], rejects) -> int:
        inserted = 0
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                if positions:
                    try:
                        with self.conn.transaction():  # savepoint: only the COPY is undone on a duplicate
                            self._copy(cur, _COPY_DIRECT, positions)
                        inserted = len(positions)
                    except psycopg.errors.UniqueViolation:
                        self.slow_batches += 1
                        self._copy(cur, _COPY, positions)
                        cur.execute(_MERGE)
                        inserted = cur.rowcount
                if rejects:
                    cur.executemany("INSERT INTO tracker_rejects (topic, kafka_partition, kafka_offset, reason, value) "
                                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                    [(r.topic, r.partition, r.offset, r.reason, r.value) for r in rejects])
        return inserted

    def write_each(self, positions: list[Position], rejects: list[Reject], topic: str) -> tuple[int, list[Reject]]:
        """The slow path after the database refused a whole batch for its content (not for being down):
        each row in its own savepoint, a refused row becomes a reject with the database's reason, so one
        bad row can neither block the batch forever nor take its neighbours with it."""
        inserted, refused = 0, []
        self._ensure_days(positions)
        insert = sql.SQL("INSERT INTO positions ({}) VALUES ({}) ON CONFLICT (icao24, time_position) DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
        with self.conn.transaction():
            for p in positions:
                try:
                    with self.conn.transaction():
                        inserted += self.conn.execute(insert, p).rowcount
                except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                    reason = f"database refused the row: {type(exc).__name__}: {str(exc).strip()[:300]}"
                    logger.warning("%s", reason, extra={"topic": topic, "partition": p.kafka_partition,
                                                        "offset": p.kafka_offset})
                    refused.append(Reject(topic, p.kafka_partition, p.kafka_offset, reason, None))
        self.write([], list(rejects) + refused)  # committed (and checked) there
        return inserted, refused


# --------------------------------------------------------------------------- queries

_SELECT = sql.SQL("SELECT {} FROM positions").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


def latest(conn: psycopg.Connection, icao24: str) -> Position | None:
    row = conn.execute(_SELECT + sql.SQL(" WHERE icao24 = %s ORDER BY time_position DESC LIMIT 1"),
                       (icao24,)).fetchone()
    return Position(*row) if row else None


def track(conn: psycopg.Connection, icao24: str, since: datetime | None, limit: int) -> list[Position]:
    """The newest `limit` positions of one aircraft since `since`, oldest first."""
    query = _SELECT + sql.SQL(" WHERE icao24 = %s AND time_position >= %s ORDER BY time_position DESC LIMIT %s")
    rows = conn.execute(query, (icao24, since or datetime(1970, 1, 1, tzinfo=timezone.utc), limit)).fetchall()
    return [Position(*row) for row in reversed(rows)]


def count_positions(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM positions").fetchone()[0]
