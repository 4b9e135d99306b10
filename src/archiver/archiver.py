"""The archiver: every record of the topic into the Iceberg positions table, exactly once.

Each commit is one Iceberg transaction that appends the batch's rows (sorted by icao24, time_position,
each key once) and records the full {partition: next offset} map in the snapshot's summary and a table
property (lakehouse.catalog.OFFSETS_PROPERTY). The table is the only record of progress: at start, and
after a commit the catalog refused, the archiver reloads it and seeks every partition to the offsets it
holds. Commit retries are off (commit.retry.num-retries=0), so a commit made on a stale view (a zombie, or
one whose first try landed although the answer was lost) is refused instead of rebased and appended twice.
A kill -9 at any point therefore neither loses nor doubles a row: whatever the table does not hold is
read again, whatever it holds is skipped.

The partitions are assigned by hand, all of them, not through group membership: one archiver writes the
table, and every commit carries the whole map, so a second member owning half the partitions would only
see its commits refused. It also leaves out group rebalances (and kafka-python's stuck-rebalance trap).
The group's committed offsets (LAKE_GROUP_ID) are written after each Iceberg commit as a hint for lag
tools only.

A malformed record is kept, as the tracker keeps it, with its reason in the rejects table beside the
positions table. Both tables cannot change in one transaction, so the rejects are committed first, with
the same offsets map: a record below the positions table's offsets had its reject stored in the same
cycle, and a reject below the rejects table's own offsets is not stored twice after a refused or lost
positions commit.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from lakehouse import athena
from lakehouse.catalog import (OFFSETS_PROPERTY, committed_offsets, encode_offsets, ensure_rejects_table,
                               ensure_table, load_catalog)
from pipeline_common.backoff import backoff_delay
from pipeline_common.kafka_client import connect_with_retry
from tracker.records import InvalidRecord, decode

from .batch import Pending, Reject, already_stored, commit_offsets, keys_of, positions_table, rejects_table, seek_targets
from .settings import ArchiverConfig

logger = logging.getLogger(__name__)

# The commit time every row of a commit gets as ingested_at, also kept in its snapshot's summary: at start
# the archiver reads that commit's keys back, so a position repeated across the commit boundary (a producer
# re-sending an unchanged position) is not stored twice.
INGESTED_AT_PROPERTY = "flightpipe.ingested-at"
_POLL_S = 0.5


@dataclass
class ArchiverStats:
    consumed: int = 0
    rows: int = 0             # rows committed to the table by this process
    rejects: int = 0          # malformed records committed to the rejects table
    duplicates: int = 0       # records whose (icao24, time_position) was already in the commit or the one before
    skipped: int = 0          # records redelivered below the table's offsets (already archived)
    commits: int = 0
    refused: int = 0          # commits the catalog refused (the table moved): resumed from the table
    failures: int = 0         # commit tries that failed on S3 or the catalog and were retried
    lag: int | None = None    # records in the topic the table does not hold yet
    last_commit_rows: int = 0
    last_commit_at: float = 0.0
    cpu_s: float = 0.0


class Archiver:
    def __init__(self, config: ArchiverConfig) -> None:
        self.config = config
        self.lake = config.lake
        self.stats = ArchiverStats()
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._positions: Table | None = None
        self._rejects: Table | None = None
        self._stored: dict[int, int] = {}          # the positions table's offsets
        self._rejects_stored: dict[int, int] = {}  # the rejects table's offsets
        self._previous_keys: pa.Table | None = None  # keys of the last commit that had rows
        self._pending = Pending()
        self._partitions: list[int] = []

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ main loop
    def run(self, stop: threading.Event | None = None) -> ArchiverStats:
        stop = stop or self._stop
        cpu0 = time.process_time()
        try:
            if not self._load_tables(stop):
                return self.stats
            consumer = connect_with_retry(self._make_consumer, self.config.kafka, timeout_s=self.config.connect_timeout_s,
                                          stop=stop, topic=self.config.topic)
            if consumer is None:
                return self.stats
            self._consumer = consumer
            if not self._assign(stop):
                return self.stats
            logger.info("archiving %s into %s.%s (catalog %s, warehouse %s), partitions %s resumed at %s",
                        self.config.topic, *self.lake.identifier, self.lake.catalog_name, self.lake.warehouse,
                        self._partitions, self._stored or "the beginning",
                        extra={"topic": self.config.topic, "offsets": self._stored})
            self._loop(stop)
        finally:
            self._shutdown()
            self.stats.cpu_s = time.process_time() - cpu0
        return self.stats

    def _loop(self, stop: threading.Event) -> None:
        cfg, lake = self.config, self.lake
        next_status = time.monotonic() + cfg.status_interval_s
        last_status = (time.monotonic(), 0, 0)
        while not (stop.is_set() or self._stop.is_set()):
            room = max(1, lake.commit_rows - self._pending.consumed)
            try:
                polled = self._consumer.poll(timeout_ms=int(self._poll_timeout() * 1000), max_records=room)
            except KafkaError as exc:
                logger.warning("Kafka error while polling (%s); retrying", exc, extra={"topic": cfg.topic})
                stop.wait(1.0)
                continue
            self._take(polled)
            now = time.monotonic()
            if self._pending.due(lake.commit_rows, lake.commit_interval_s, now):
                self._commit(stop)
            if now >= next_status:
                last_status = self._log_status(last_status)
                self._check_partitions(stop)
                next_status = now + cfg.status_interval_s

    def _poll_timeout(self) -> float:
        pending = self._pending
        if not pending.consumed:
            return _POLL_S
        return max(0.0, min(_POLL_S, pending.started + self.lake.commit_interval_s - time.monotonic()))

    def _take(self, polled: dict) -> None:
        pending, stored, rejects_stored = self._pending, self._stored, self._rejects_stored
        for tp, records in polled.items():
            for record in records:
                partition, offset = record.partition, record.offset
                if already_stored(partition, offset, stored):
                    self.stats.skipped += 1
                    continue
                pending.take(partition, offset)
                try:
                    pending.add(decode(record.value, partition, offset, record.headers))
                    continue
                except InvalidRecord as exc:
                    reason = str(exc)
                except Exception as exc:  # noqa: BLE001 - a record must never stop the archiver
                    logger.exception("unexpected error decoding a record", extra=_where(record))
                    reason = f"unexpected {type(exc).__name__}: {exc}"
                if not already_stored(partition, offset, rejects_stored):
                    logger.warning("malformed record kept in the rejects table: %s", reason, extra=_where(record))
                    pending.rejects.append(Reject(record.topic, partition, offset, reason, record.value))
        self.stats.consumed += sum(len(r) for r in polled.values())

    # ------------------------------------------------------------------ commits
    def _commit(self, stop: threading.Event, deadline: float | None = None) -> bool:
        """Commit what is pending: rejects, then positions, each with the full offsets map; retried with
        backoff while S3 or the catalog fails (nothing is polled, nothing committed in Kafka meanwhile).
        A refused commit resumes from the table. False if it gave up (past ``deadline``)."""
        pending = self._pending
        if not pending.consumed:
            return True
        topic = self.config.topic
        offsets = commit_offsets(self._stored, pending.offsets)
        text = encode_offsets(topic, offsets)
        now = datetime.now(timezone.utc)
        rows, duplicates = positions_table(pending.positions(), now, self._previous_keys)
        attempt = 0
        while True:
            try:
                if pending.rejects:
                    with self._rejects.transaction() as tx:
                        tx.append(rejects_table(pending.rejects, now), snapshot_properties={OFFSETS_PROPERTY: text})
                        tx.set_properties({OFFSETS_PROPERTY: text})
                    self._rejects_stored = offsets
                    self.stats.rejects += len(pending.rejects)
                    pending.rejects = []
                if rows.num_rows:
                    marks = {OFFSETS_PROPERTY: text, INGESTED_AT_PROPERTY: now.isoformat()}
                    with self._positions.transaction() as tx:
                        tx.append(rows, snapshot_properties=marks)
                        tx.set_properties(marks)  # survive a compaction's snapshot and snapshot expiry
                    self._stored = offsets
                    self._previous_keys = keys_of(rows)
                # With no rows the positions table is left as it is (no snapshot, no offsets-only commit, which
                # Iceberg would not check against a concurrent one): its records are read again after a restart
                # and skipped again, as rejects already stored or as the previous commit's duplicates.
                break
            except CommitFailedException as exc:
                self.stats.refused += 1
                if deadline is not None:  # stopping: the next start resumes from the table anyway
                    logger.warning("the catalog refused the last commit (%s); its records are read again at the "
                                   "next start", exc, extra={"topic": topic, "offsets": offsets})
                    return False
                logger.warning("the catalog refused the commit (%s); resuming from the table's offsets", exc,
                               extra={"topic": topic, "offsets": offsets})
                self._resume(stop)
                return True
            except Exception as exc:  # noqa: BLE001 - S3 or the catalog down: retried, the batch kept
                self.stats.failures += 1
                attempt += 1
                delay = backoff_delay(attempt, 0.5, self.config.retry_max_s)
                if deadline is not None and time.monotonic() + delay > deadline:
                    logger.error("commit failed (%s: %s); giving up at stop: these records are read again at the "
                                 "next start", type(exc).__name__, exc, extra={"topic": topic, "offsets": offsets})
                    return False
                logger.warning("commit failed (%s: %s); retrying in %.1fs", type(exc).__name__, str(exc)[:300], delay,
                               extra={"topic": topic, "offsets": offsets, "attempt": attempt})
                if deadline is None:
                    if stop.wait(delay):
                        deadline = time.monotonic() + self.config.stop_timeout_s  # stopping: a bounded last try
                else:
                    time.sleep(delay)
        self.stats.rows += rows.num_rows
        self.stats.duplicates += duplicates
        self.stats.commits += 1
        self.stats.last_commit_rows = rows.num_rows
        self.stats.last_commit_at = time.time()
        self._pending = Pending()
        self._commit_hint(offsets)
        athena.publish_quietly(self.lake, self._positions, self._rejects)  # LAKE_ATHENA_PUBLISH: never raises
        return True

    def _commit_hint(self, offsets: dict[int, int]) -> None:
        """The group's offsets, for lag tools (trigger.lag, make ps); never read back by the archiver."""
        try:
            self._consumer.commit({TopicPartition(self.config.topic, p): OffsetAndMetadata(o, "", -1)
                                   for p, o in offsets.items()})
        except KafkaError as exc:
            logger.warning("committing the group's offsets (a hint only) failed: %s", exc,
                           extra={"topic": self.config.topic})

    # ------------------------------------------------------------------ the table as the record of progress
    def _load_tables(self, stop: threading.Event) -> bool:
        """Both tables (created if missing), their offsets and the last commit's keys; retried with backoff
        while the catalog or S3 is unreachable. False if asked to stop meanwhile."""
        attempt = 0
        while True:
            try:
                catalog = load_catalog(self.lake)
                self._positions = ensure_table(catalog, self.lake)
                self._rejects = ensure_rejects_table(catalog, self.lake)
                self._stored = committed_offsets(self._positions, self.config.topic)
                self._rejects_stored = committed_offsets(self._rejects, self.config.topic)
                self._previous_keys = last_commit_keys(self._positions)
                return True
            except Exception as exc:  # noqa: BLE001 - the catalog's database or S3 down: wait for it
                attempt += 1
                delay = backoff_delay(attempt, 0.5, self.config.retry_max_s)
                logger.warning("lake not reachable (%s: %s); retrying in %.1fs", type(exc).__name__,
                               str(exc)[:300], delay, extra={"attempt": attempt})
                if stop.wait(delay) or self._stop.is_set():
                    return False

    def _resume(self, stop: threading.Event) -> None:
        """After a refused commit: drop what is pending, reload the tables, seek to their offsets."""
        self._pending = Pending()
        if self._load_tables(stop):
            self._seek()

    def _assign(self, stop: threading.Event) -> bool:
        """Every partition of the topic, assigned to this consumer, each at the table's offset."""
        topic = self.config.topic
        attempt = 0
        while True:
            partitions = self._consumer.partitions_for_topic(topic)
            if partitions:
                break
            attempt += 1
            delay = backoff_delay(attempt, 0.5, 10)
            logger.warning("topic %s has no partitions yet (does it exist?); retrying in %.1fs", topic, delay,
                           extra={"topic": topic})
            if stop.wait(delay):
                return False
        self._partitions = sorted(partitions)
        self._consumer.assign([TopicPartition(topic, p) for p in self._partitions])
        self._seek()
        return True

    def _seek(self) -> None:
        topic = self.config.topic
        for partition, offset in seek_targets(self._partitions, self._stored).items():
            tp = TopicPartition(topic, partition)
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)

    def _check_partitions(self, stop: threading.Event) -> None:
        """Partitions added to the topic are archived too (what is pending is committed first)."""
        try:
            partitions = self._consumer.partitions_for_topic(self.config.topic) or set()
        except KafkaError:
            return
        if set(partitions) - set(self._partitions):
            logger.info("topic %s has new partitions %s", self.config.topic, sorted(set(partitions) - set(self._partitions)),
                        extra={"topic": self.config.topic})
            self._commit(stop)
            self._assign(stop)

    # ------------------------------------------------------------------ status and stop
    def _refresh_lag(self) -> None:
        try:
            ends = self._consumer.end_offsets([TopicPartition(self.config.topic, p) for p in self._partitions])
            self.stats.lag = sum(max(0, end - self._stored.get(tp.partition, 0)) for tp, end in ends.items())
        except KafkaError as exc:
            logger.debug("end offsets unavailable: %s", exc)

    def _log_status(self, last: tuple[float, int, int]) -> tuple[float, int, int]:
        self._refresh_lag()
        s, now = self.stats, time.monotonic()
        elapsed = max(1e-9, now - last[0])
        rows_per_s, consumed_per_s = (s.rows - last[1]) / elapsed, (s.consumed - last[2]) / elapsed
        ago = f"{time.time() - s.last_commit_at:.0f}s ago ({s.last_commit_rows} rows)" if s.last_commit_at else "none yet"
        # What the process holds, by kind: Arrow's pool (pending chunks, the last keys, writes in flight) and
        # Python's object count, so a growing RSS can be told apart.
        arrow_mb, blocks = pa.total_allocated_bytes() / 1e6, sys.getallocatedblocks()
        logger.info("status: %d rows committed (%.0f rows/s) | %d consumed (%.0f/s), %d pending | %d rejected, "
                    "%d duplicates | lag %s | last commit %s | arrow %.1f MB, %d Python blocks", s.rows, rows_per_s,
                    s.consumed, consumed_per_s, self._pending.consumed, s.rejects, s.duplicates, s.lag, ago, arrow_mb,
                    blocks,
                    extra={"topic": self.config.topic, "rows": s.rows, "rows_per_s": round(rows_per_s, 1),
                           "consumed": s.consumed, "pending": self._pending.consumed, "lag": s.lag,
                           "commits": s.commits, "refused": s.refused, "arrow_mb": round(arrow_mb, 1),
                           "python_blocks": blocks})
        return now, s.rows, s.consumed

    def _shutdown(self) -> None:
        if self._consumer is not None:
            if self._pending.consumed and self._positions is not None:
                # A stop (SIGTERM): what is buffered is committed, with a bounded time for S3 or the catalog.
                self._commit(threading.Event(), deadline=time.monotonic() + self.config.stop_timeout_s)
            try:
                self._consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001
                logger.warning("closing the consumer failed", exc_info=True)
        s = self.stats
        logger.info("archiver stopped: %d consumed, %d rows committed in %d commits, %d rejected, %d duplicates, "
                    "%d redelivered skipped, %d refused commits, %d failed tries", s.consumed, s.rows, s.commits,
                    s.rejects, s.duplicates, s.skipped, s.refused, s.failures,
                    extra={"topic": self.config.topic, "rows": s.rows, "commits": s.commits})

    def _make_consumer(self, bootstrap_timeout_s: float) -> KafkaConsumer:
        lake = self.lake
        return KafkaConsumer(group_id=lake.group_id, client_id=f"flight-archiver-{lake.group_id}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=min(lake.commit_rows, 10_000), check_crcs=True,
                             bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000), **self.config.kafka.client_kwargs())


def last_commit_keys(table: Table) -> pa.Table | None:
    """(icao24, time_position) of the rows the table's last archiver commit wrote (None for a new table)."""
    when = table.properties.get(INGESTED_AT_PROPERTY)
    current = table.current_snapshot()
    if current is None:
        return None
    if not when:  # the property removed by another tool: the newest snapshot that has it
        for snapshot in ancestors_of(current, table.metadata):
            when = snapshot.summary.additional_properties.get(INGESTED_AT_PROPERTY) if snapshot.summary else None
            if when:
                break
    if not when:
        return None
    rows = table.scan(row_filter=EqualTo("ingested_at", when), selected_fields=("icao24", "time_position")).to_arrow()
    return keys_of(rows)


def _where(record) -> dict:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
