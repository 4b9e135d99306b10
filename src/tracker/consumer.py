"""The tracker's Kafka consumer (group `flight-tracker`): decode, update the live picture, write each
batch to PostgreSQL in one transaction, and only then commit the batch's offsets.

Exactly-once history from at-least-once delivery: a crash between the database commit and the offset
commit redelivers records whose rows exist, and the primary key skips them. A malformed record is
logged with topic/partition/offset, counted, and stored with its reason in `tracker_rejects` in the
same transaction, so it is neither lost nor retried forever. While the database is down the batch
is retried with backoff, nothing is polled and no offset is committed.

The database connection is in autocommit mode and every batch is one explicit transaction that the
store checks is committed before the batch's offsets are handed back for committing (tracker.store).
A position older than the retention window is not stored (the next maintenance pass would drop its
day): it is counted as past_retention, and TRACKER_RETENTION_DAYS=0 keeps every day, e.g. for replays.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import psycopg
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline_common.backoff import backoff_delay
from pipeline_common.kafka_client import BrokerUnavailable, RebalanceWatchdog, connect_with_retry  # noqa: F401 (BrokerUnavailable: raised by _connect)

from . import store
from .live import LivePicture
from .records import InvalidRecord, Position, decode
from .settings import TrackerConfig

logger = logging.getLogger(__name__)

_STATUS_INTERVAL_S = 10.0
_LAG_INTERVAL_S = 2.0
_STUCK_REBALANCE_S = 45.0
_RATE_WINDOW_S = 10


_SHUTDOWN = object()  # the writer thread's "no more batches"


class TrackerStats:
    """Counters the API shows; written by the consumer thread, read by the API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.positions_total = 0      # rows written to PostgreSQL by this process
        self.duplicates = 0           # redelivered records whose row already existed
        self.rejected = 0             # malformed records (stored in tracker_rejects)
        self.past_retention = 0       # positions older than the retention window, not stored (the policy)
        self.maintenance_passes = 0
        self.consumed = 0
        self.consumer_lag: int | None = None
        self.kafka_error: str | None = "not connected yet"
        self.database_error: str | None = None
        self.last_poll = 0.0
        self._buckets: deque[list] = deque(maxlen=_RATE_WINDOW_S + 1)  # [whole second, positions]

    def written(self, inserted: int, attempted: int, rejected: int, past_retention: int = 0) -> None:
        """Counts a batch whose transaction has committed (never before: a row counts once it is durable)."""
        now = int(time.time())
        with self._lock:
            self.past_retention += past_retention
            self.positions_total += inserted
            self.duplicates += attempted - inserted
            self.rejected += rejected
            if self._buckets and self._buckets[-1][0] == now:
                self._buckets[-1][1] += inserted
            else:
                self._buckets.append([now, inserted])

    def positions_per_s(self) -> float:
        now = int(time.time())
        with self._lock:
            total = sum(n for second, n in self._buckets if now - _RATE_WINDOW_S <= second < now)
        return total / _RATE_WINDOW_S


@dataclass
class _Batch:
    positions: list
    rejects: list
    offsets: dict           # TopicPartition -> next offset to consume
    started: float = 0.0

    def __len__(self) -> int:
        return len(self.positions) + len(self.rejects)


class TrackerConsumer:
    def __init__(self, config: TrackerConfig, live: LivePicture, stats: TrackerStats | None = None) -> None:
        self.config = config
        self.live = live
        self.stats = stats or TrackerStats()
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._conn: psycopg.Connection | None = None
        self._writer: store.PositionWriter | None = None
        self._committed: dict = {}
        self._batch = _Batch([], [], {})
        self._watchdog = RebalanceWatchdog(_STUCK_REBALANCE_S)
        # The writer thread writes batch N while this thread polls and decodes batch N+1 (the tracker's CPU
        # and PostgreSQL's then overlap). At most one batch waits for it: memory stays bounded.
        self._to_write: queue.Queue = queue.Queue(maxsize=1)
        self._written: queue.Queue = queue.Queue()  # offsets of written batches, committed by this thread
        self._said_past_retention = False
        self._in_flight = 0
        self._write_failed = False
        self._writer_thread: threading.Thread | None = None

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ main loop
    def run(self, stop: threading.Event | None = None) -> TrackerStats:
        stop = stop or self._stop
        cfg = self.config
        if not self._wait_for_database(stop):
            return self.stats
        consumer = self._connect(stop)
        if consumer is None:
            return self.stats
        logger.info("tracker consuming %s as group %s (batch %d, linger %.1fs)", cfg.topic, cfg.group_id,
                    cfg.batch_size, cfg.batch_linger_s, extra={"topic": cfg.topic})
        self._writer_thread = threading.Thread(target=self._write_loop, args=(stop,), name="tracker-writer",
                                               daemon=True)
        self._writer_thread.start()
        now = time.monotonic()
        next_lag, next_status = now, now + _STATUS_INTERVAL_S
        try:
            while not (stop.is_set() or self._stop.is_set()):
                if self._watchdog.stuck(self._consumer, time.monotonic()):
                    self._submit()
                    self._drain_writer()
                    consumer = self._replace_consumer()
                room = max(1, cfg.batch_size - len(self._batch))
                try:
                    polled = consumer.poll(timeout_ms=int(self._poll_timeout() * 1000), max_records=room)
                    self.stats.kafka_error = None
                    self.stats.last_poll = time.time()
                except KafkaError as exc:
                    self.stats.kafka_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("Kafka error while polling (%s); retrying", exc, extra={"topic": cfg.topic})
                    stop.wait(1.0)
                    continue
                self._take(polled)
                now = time.monotonic()
                if len(self._batch) and (len(self._batch) >= cfg.batch_size
                                         or now - self._batch.started >= cfg.batch_linger_s):
                    self._submit()
                self._commit_written()
                self.live.expire()
                if now >= next_lag:
                    self._refresh_lag()
                    next_lag = now + _LAG_INTERVAL_S
                if now >= next_status:
                    self._log_status()
                    next_status = now + _STATUS_INTERVAL_S
        finally:
            self._shutdown()
        return self.stats

    def _poll_timeout(self) -> float:
        if not len(self._batch):
            return 0.5
        return max(0.0, min(0.5, self._batch.started + self.config.batch_linger_s - time.monotonic()))

    def _take(self, polled: dict) -> None:
        fresh: list[Position] = []
        batch = self._batch
        append = fresh.append
        for tp, records in polled.items():
            for record in records:
                try:
                    append(decode(record.value, record.partition, record.offset, record.headers))
                except InvalidRecord as exc:
                    self._reject(record, str(exc))
                except Exception as exc:  # noqa: BLE001 - a record must never stop the tracker
                    logger.exception("unexpected error decoding a record", extra=_where(record))
                    self._reject(record, f"unexpected {type(exc).__name__}: {exc}")
            if records:
                batch.offsets[tp] = records[-1].offset + 1
        if fresh or polled:
            if not batch.started:
                batch.started = time.monotonic()
            batch.positions.extend(fresh)
            self.stats.consumed += sum(len(r) for r in polled.values())
        if fresh:
            self.live.update(fresh)

    def _reject(self, record, reason: str) -> None:
        logger.warning("malformed record stored in tracker_rejects: %s", reason, extra=_where(record))
        self._batch.rejects.append(store.Reject(record.topic, record.partition, record.offset, reason, record.value))

    # ------------------------------------------------------------------ database
    def _database(self) -> store.PositionWriter:
        if self._writer is None:
            conn = store.connect(self.config.database, "flight-tracker")
            try:
                store.prepare(conn, self.config.retention_days, self.config.partitions_ahead_days)
                self._writer = store.PositionWriter(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.stats.database_error = None
        return self._writer

    def _wait_for_database(self, stop: threading.Event) -> bool:
        """Schema and partitions before any record is read; retried with backoff while the server is down."""
        attempt = 0
        while True:
            try:
                self._database()
                return True
            except psycopg.OperationalError as exc:
                self.stats.database_error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                attempt += 1
                delay = backoff_delay(attempt, 0.5, self.config.db_retry_max_s)
                logger.warning("database not reachable (%s); retrying in %.1fs", self.stats.database_error, delay)
                if stop.wait(delay) or self._stop.is_set():
                    return False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn, self._writer = None, None

    # ------------------------------------------------------------------ writer thread
    def _submit(self) -> None:
        """Hand the batch being built to the writer thread (waits while one batch is already waiting)."""
        batch = self._batch
        if not len(batch):
            return
        self._batch = _Batch([], [], {})
        self._in_flight += 1
        while True:
            self._commit_written()
            try:
                self._to_write.put(batch, timeout=0.2)
                return
            except queue.Full:
                if self._writer_thread is None or not self._writer_thread.is_alive():
                    raise RuntimeError("the tracker's database writer thread has stopped") from None

    def _drain_writer(self, timeout_s: float | None = None) -> None:
        """Wait until every submitted batch is written (or given up), committing as they complete."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._in_flight and self._writer_thread is not None and self._writer_thread.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                break
            self._commit_written(wait_s=0.2)
        self._commit_written()

    def _commit_written(self, wait_s: float = 0.0) -> None:
        """Commit the offsets of the batches the writer has finished, in order, in one request."""
        offsets: dict = {}
        try:
            while True:
                done = self._written.get(timeout=wait_s) if wait_s and not offsets else self._written.get_nowait()
                self._in_flight -= 1
                if done is not None:  # None: a batch given up at shutdown, nothing after it is committed
                    offsets.update(done)
        except queue.Empty:
            pass
        if offsets and not self._write_failed:
            self._commit(offsets)

    def _write_loop(self, stop: threading.Event) -> None:
        try:
            self._write_batches(stop)
        except BaseException:
            # Nothing of the batch in hand is committed, nor are its offsets: it is read again at the next start.
            logger.exception("the tracker's database writer stopped")
            raise

    def _write_batches(self, stop: threading.Event) -> None:
        interval = self.config.maintenance_interval_s
        next_maintenance = time.monotonic() + interval
        while True:
            try:
                batch = self._to_write.get(timeout=min(1.0, interval))
            except queue.Empty:
                batch = None
            if batch is _SHUTDOWN:
                return
            if batch is not None:
                ok = not self._write_failed and self._write(batch, stop)
                if not ok:
                    self._write_failed = True  # a later batch's offsets would skip this one's records
                self._written.put(batch.offsets if ok else None)
            if time.monotonic() >= next_maintenance:
                self._maintain()
                next_maintenance = time.monotonic() + interval

    def _write(self, batch: _Batch, stop: threading.Event) -> bool:
        """Write one batch, retrying with backoff while the database is down; False if given up at shutdown.
        Returns only once the batch's transaction has committed: its offsets may then be committed."""
        attempt = 0
        rejected = len(batch.rejects)
        positions, past = self._within_retention(batch.positions)
        while True:
            try:
                inserted = self._database().write(positions, batch.rejects)
                break
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                # The content, not the server: retrying the same batch would fail forever.
                logger.error("the database refused the batch (%s); writing its rows one by one", exc)
                inserted, refused = self._writer.write_each(positions, batch.rejects, self.config.topic)
                rejected += len(refused)
                break
            except psycopg.Error as exc:
                self.stats.database_error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                self._drop_connection()
                if stop.is_set() or self._stop.is_set():
                    logger.error("database unavailable at shutdown: %d position(s) not written and their offsets "
                                 "not committed (they are read again at the next start)", len(positions))
                    return False
                attempt += 1
                delay = backoff_delay(attempt, 0.5, self.config.db_retry_max_s)
                logger.warning("database write failed (%s); offsets not committed, retrying in %.1fs",
                               self.stats.database_error, delay, extra={"positions": len(positions)})
                stop.wait(delay)
        self.stats.database_error = None
        self.stats.written(inserted, len(positions) - (rejected - len(batch.rejects)), rejected, len(past))
        return True

    def _within_retention(self, positions: list) -> tuple[list, list]:
        """(kept, past retention): a position of a day older than TRACKER_RETENTION_DAYS is not stored."""
        oldest = store.oldest_kept_day(self.config.retention_days)
        if oldest is None or not positions:
            return positions, []
        cutoff = store.day_start(oldest)
        past = [p for p in positions if p.time_position < cutoff]
        if not past:
            return positions, []
        if not self._said_past_retention:
            self._said_past_retention = True
            logger.warning("positions older than the retention window (before %s, TRACKER_RETENTION_DAYS=%d) are "
                           "not stored, only counted as past_retention (/stats, status line); set "
                           "TRACKER_RETENTION_DAYS=0 to keep every day, e.g. to replay a past day",
                           oldest.isoformat(), self.config.retention_days,
                           extra={"topic": self.config.topic, "partition": past[0].kafka_partition,
                                  "offset": past[0].kafka_offset})
        return [p for p in positions if p.time_position >= cutoff], past

    def _commit(self, offsets: dict) -> None:
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
            self._committed.update(offsets)
        except KafkaError as exc:
            # Rebalance or coordinator move: these records come again and their rows are skipped.
            logger.warning("offset commit failed (%s); the batch will be redelivered and de-duplicated", exc)

    def _maintain(self) -> None:
        """The maintenance pass (every TRACKER_MAINTENANCE_INTERVAL_S, between two batches): partitions past
        retention dropped, the coming days' created; each step commits on its own."""
        try:
            writer = self._database()
            store.maintain(writer.conn, self.config.retention_days, self.config.partitions_ahead_days)
            writer.forget_partitions()
            self.stats.maintenance_passes += 1
        except (psycopg.Error, store.UncommittedWork) as exc:
            logger.warning("maintenance pass failed (%s); trying again in %.0f s", exc,
                           self.config.maintenance_interval_s)
            self._drop_connection()

    # ------------------------------------------------------------------ kafka
    def _connect(self, stop: threading.Event) -> KafkaConsumer | None:
        """The consumer, retried while the broker cannot be reached for up to TRACKER_CONNECT_TIMEOUT_S
        (BrokerUnavailable then); None if asked to stop meanwhile."""
        cfg = self.config

        def failed(exc: KafkaError) -> None:
            self.stats.kafka_error = f"{type(exc).__name__}: {exc}"
        consumer = connect_with_retry(self._make_consumer, cfg.kafka, timeout_s=cfg.connect_timeout_s, stop=stop,
                                      topic=cfg.topic, on_error=failed)
        if consumer is None:
            return None
        consumer.subscribe([cfg.topic])
        self._consumer = consumer
        self.stats.kafka_error = None
        return consumer

    def _make_consumer(self, bootstrap_timeout_s: float) -> KafkaConsumer:
        cfg = self.config
        return KafkaConsumer(group_id=cfg.group_id, client_id=f"flight-tracker-{cfg.group_id}",
                             enable_auto_commit=False, auto_offset_reset=cfg.starting_position,
                             max_poll_records=cfg.batch_size, check_crcs=True,
                             bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000), **cfg.kafka.client_kwargs())

    def _replace_consumer(self) -> KafkaConsumer:
        # The batch before it was submitted and written (the run loop drained the writer): nothing is lost.
        self._watchdog.retire(self._consumer, self.config.group_id, self.config.topic)
        self._consumer = self._make_consumer(10.0)
        self._consumer.subscribe([self.config.topic])
        return self._consumer

    def _refresh_lag(self) -> None:
        consumer = self._consumer
        assigned = list(consumer.assignment()) if consumer else []
        if not assigned:
            return
        try:
            ends = consumer.end_offsets(assigned)
            lag = 0
            for tp, end in ends.items():
                done = self._committed.get(tp)
                if done is None:
                    done = consumer.committed(tp)
                    if done is not None:
                        self._committed[tp] = done
                lag += max(0, end - (done or 0))
            self.stats.consumer_lag = lag
        except KafkaError as exc:
            logger.debug("end offsets unavailable: %s", exc)

    def _log_status(self) -> None:
        s = self.stats
        logger.info("status: %d aircraft live | %.0f positions/s | %d stored, %d duplicates skipped, %d rejected, "
                    "%d past retention | lag %s", len(self.live), s.positions_per_s(), s.positions_total, s.duplicates,
                    s.rejected, s.past_retention, s.consumer_lag,
                    extra={"aircraft": len(self.live), "positions_total": s.positions_total,
                           "rejected": s.rejected, "past_retention": s.past_retention, "lag": s.consumer_lag})

    def _shutdown(self) -> None:
        try:
            if self._writer_thread is not None:
                # Stopping: the writer gives each remaining batch one try (a database still down then means
                # those records are read again at the next start, since their offsets are not committed).
                self._stop.set()
                self._submit()
                self._to_write.put(_SHUTDOWN)  # after the last batch: the writer finishes it, then stops
                self._drain_writer(timeout_s=120)
                self._writer_thread.join(timeout=10)
        except Exception:  # noqa: BLE001 - whatever is not written is read again at the next start
            logger.exception("final write failed")
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001
                logger.warning("closing the consumer failed", exc_info=True)
        self._drop_connection()
        s = self.stats
        logger.info("tracker stopped: %d consumed, %d stored, %d duplicates skipped, %d rejected, %d past retention, "
                    "%d maintenance passes", s.consumed, s.positions_total, s.duplicates, s.rejected, s.past_retention,
                    s.maintenance_passes)


def _where(record) -> dict:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
