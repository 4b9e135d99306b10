"""The trigger's consumer loop: poll, batch per partition, invoke in parallel, commit what is handled.

One thread owns the KafkaConsumer (kafka-python is not thread-safe): it polls, fills the
per-partition buffers, hands ready batches to a pool of `concurrency` invoke workers (at most one
batch per partition, so order holds within a partition), and commits offsets once a batch is
fully handled. Buffers are bounded by pausing partitions that are a full batch ahead.

Starting position (AWS semantics): a group with committed offsets resumes from them; a new group
starts at TRIM_HORIZON (earliest), LATEST, or AT_TIMESTAMP. The resolved start is committed at
once, so a crash before the first batch cannot make LATEST skip records produced meanwhile.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import MemberState, OffsetAndMetadata

from pipeline_common.backoff import backoff_delay
from pipeline_common.kafka_client import BrokerUnavailable, connect_with_retry

from .batch_processor import BatchAborted, BatchProcessor
from .batching import PartitionBuffer
from .esm_event import EsmEventBuilder, partition_key
from .invoker import LambdaInvoker
from .mapping import TriggerConfig
from .offsets import OffsetTracker
from .on_failure import FailedRecord, KafkaDestination, SqsDestination, build_on_failure_record
from .stats import StatsCollector, TriggerStats

logger = logging.getLogger(__name__)

__all__ = ["BrokerUnavailable", "Trigger", "TriggerStats"]

_IDLE_POLL_S = 0.2
# A join/sync that has not completed in this long is treated as hung (see _subscribe).
_STUCK_REBALANCE_S = 60.0
_BUSY_POLL_S = 0.01      # while batches are in flight: how soon a finished batch is committed
_CRASH_HOLD_S = 5.0      # a batch that raised unexpectedly is re-read after this pause
_ABORT_WAIT_S = 5.0
_BUFFERED_PAYLOADS = 4   # records waiting behind the batches in flight, in full invoke payloads (all partitions)


@dataclass
class _InFlight:
    future: Future
    cancel: threading.Event
    first: int
    last: int


class Trigger:
    """`Trigger(config).run(...)` consumes until stopped; `.stats` is safe to read from any thread."""

    def __init__(self, config: TriggerConfig | None = None, *, invoker=None, destinations=None,
                 consumer=None) -> None:
        self.config = config or TriggerConfig.from_env()
        cfg = self.config
        self._stats = StatsCollector()
        self._builder = EsmEventBuilder(cfg.kafka.bootstrap_servers, cfg.event_source, cfg.event_source_arn)
        self._invoker = invoker or LambdaInvoker(
            cfg.function_name, cfg.qualifier, max_pool_connections=cfg.concurrency + 2,
            read_timeout_s=cfg.invoke_read_timeout_s, connect_timeout_s=cfg.invoke_connect_timeout_s)
        if destinations is None:
            destinations = []
            if cfg.dlq_topic:
                destinations.append(KafkaDestination(cfg.dlq_topic, cfg.kafka))
            if cfg.dlq_sqs_url:
                destinations.append(SqsDestination(cfg.dlq_sqs_url))
        self._destinations = list(destinations)
        self._function_arn = cfg.function_name + (f":{cfg.qualifier}" if cfg.qualifier else "")
        self._processor = BatchProcessor(cfg, self._invoker, self._builder, self._deliver, self._stats)
        self._batch_size = 1 if cfg.per_message else cfg.batch_size
        self._window = 0.0 if cfg.per_message else cfg.maximum_batching_window_s
        self._tracker = OffsetTracker()
        self._buffers: dict = {}
        self._inflight: dict = {}
        self._orphans: list[_InFlight] = []
        self._hold: dict = {}
        self._paused: set = set()
        self._consumer = consumer
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._assigned_once = False
        self._rebalance_lock = threading.Lock()
        self._rebalance_events: list = []
        self._rebalancing_since: float | None = None

    # -- public --------------------------------------------------------------------------
    @property
    def stats(self) -> TriggerStats:
        return self._stats.snapshot()

    def stop(self) -> None:
        """Finish the batches in flight, commit, leave the group."""
        self._stop.set()

    def abort(self) -> None:
        """Stop now: batches still retrying are given up (not committed, so re-delivered later)."""
        self._abort.set()
        self._stop.set()

    def run(self, stop_event: threading.Event | None = None, duration: float | None = None,
            until_idle_s: float | None = None) -> TriggerStats:
        """Consume until `stop_event`/stop(), `duration` seconds, or `until_idle_s` seconds without
        new records and with nothing buffered or in flight (drain the topic, then stop)."""
        cfg = self.config
        stop = stop_event or self._stop
        started = time.monotonic()
        deadline = started + duration if duration else None
        consumer = self._consumer or self._connect(stop)
        if consumer is None:  # stopped while waiting for the broker
            return self.stats
        self._subscribe(consumer)
        executor = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="trigger-invoke")
        logger.info("trigger started: %s -> %s (group %s, %s, batch %d, window %.1fs, concurrency %d, "
                    "retries %s, dlq %s%s)", cfg.topic, self._function_arn, cfg.group_id, cfg.starting_position,
                    self._batch_size, self._window, cfg.concurrency, cfg.effective_retry_attempts,
                    cfg.dlq_topic, f" + {cfg.dlq_sqs_url}" if cfg.dlq_sqs_url else "",
                    extra={"topic": cfg.topic, "mode": cfg.mode})
        last_activity = started
        next_status = started + cfg.status_interval_s
        try:
            while not (stop.is_set() or self._stop.is_set()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if self._rebalance_stuck(consumer, now):
                    consumer = self._replace_consumer(consumer)
                _release_parked_records(consumer)
                try:
                    polled = consumer.poll(timeout_ms=int(self._poll_timeout(now) * 1000))
                    self._apply_rebalance(polled)
                except KafkaError as exc:
                    # Broker restarting, coordinator moving: kafka-python reconnects; try again shortly.
                    logger.warning("Kafka error while polling (%s); retrying", exc, extra={"topic": cfg.topic})
                    stop.wait(1.0)
                    continue
                now = time.monotonic()
                consumed = 0
                for tp, records in polled.items():
                    buf = self._buffers.get(tp)
                    if buf is not None:
                        consumed += buf.add(records, now)
                if consumed:
                    self._stats.add(consumed=consumed)
                self._reap()
                self._dispatch(executor, now)
                self._flow_control()
                if consumed or self._inflight or any(len(b) for b in self._buffers.values()):
                    last_activity = now
                # Never "idle" mid-rebalance: with nothing assigned, the lag looks like zero.
                if until_idle_s is not None and now - last_activity >= until_idle_s and (
                        self._rebalancing_since is None) and (
                        self._assigned_once or now - started > until_idle_s + 60):
                    lag = self._refresh_lag()
                    if not lag:
                        logger.info("idle for %.1fs with no lag: stopping", until_idle_s)
                        break
                    # Records exist that were never fetched: not drained, keep going.
                    logger.warning("idle for %.1fs but %d record(s) not fetched yet; continuing", until_idle_s,
                                   lag, extra={"topic": cfg.topic})
                    last_activity = now
                if now >= next_status:
                    self._status()
                    next_status = now + cfg.status_interval_s
        finally:
            self._shutdown(executor)
        return self.stats

    # -- consumer set-up and rebalancing ------------------------------------------------
    def _subscribe(self, consumer) -> None:
        consumer.subscribe([self.config.topic], listener=_Listener(self))
        self._consumer = consumer
        self._rebalancing_since = None

    def _rebalance_stuck(self, consumer, now: float) -> bool:
        """True when the group membership has been rebalancing for too long with nothing of ours
        in flight. kafka-python 3.0.12 can hang in a rejoin (seen when topic metadata arrives just
        after the first join: the leader assigns nothing, rejoins, the SyncGroup answer is never
        applied and heartbeats stop): the trigger would sit idle forever without this safety net."""
        state = getattr(getattr(consumer, "_coordinator", None), "state", None)
        if state is None or state == MemberState.STABLE:
            self._rebalancing_since = None
            return False
        if self._rebalancing_since is None:
            self._rebalancing_since = now
            return False
        return (now - self._rebalancing_since > _STUCK_REBALANCE_S
                and not self._inflight and not any(len(b) for b in self._buffers.values()))

    def _replace_consumer(self, consumer):
        logger.error("consumer group %s has not finished rebalancing in %.0f s; recreating the consumer "
                     "(nothing is in flight, so nothing is lost)", self.config.group_id, _STUCK_REBALANCE_S,
                     extra={"topic": self.config.topic})
        try:
            consumer.close(autocommit=False)
        except Exception:  # noqa: BLE001 - a broken consumer may fail to close; the new one matters
            logger.warning("closing the stuck consumer failed", exc_info=True)
        for tp in list(self._buffers):
            self._tracker.revoke(tp)
        self._buffers.clear()
        self._paused.clear()
        with self._rebalance_lock:
            self._rebalance_events.clear()
        replacement = self._make_consumer()
        self._subscribe(replacement)
        return replacement

    def _connect(self, stop: threading.Event):
        """The consumer, retried while the broker cannot be reached for up to TRIGGER_CONNECT_TIMEOUT_S;
        None if asked to stop meanwhile."""
        return connect_with_retry(lambda bootstrap_s: self._make_consumer(bootstrap_timeout_s=bootstrap_s),
                                  self.config.kafka, timeout_s=self.config.connect_timeout_s, stop=stop,
                                  topic=self.config.topic)

    def _make_consumer(self, bootstrap_timeout_s: float = 30.0):
        cfg = self.config
        check_crcs = cfg.check_crcs
        if check_crcs is None:
            check_crcs = _fast_crc32c()
            if not check_crcs:
                logger.warning("crc32c C extension not installed: record CRC checks are off (kafka-python's "
                               "pure-Python CRC32C would cap the trigger near 10k records/s); "
                               "pip install crc32c, or set TRIGGER_CHECK_CRCS=true to check anyway")
        return KafkaConsumer(
            group_id=cfg.group_id, client_id=f"flight-trigger-{cfg.group_id}",
            enable_auto_commit=False,
            # AT_TIMESTAMP seeks once assigned; from "earliest", nothing fetched before the seek can be
            # past the target (and what precedes it is dropped by the buffer's offset check).
            auto_offset_reset="latest" if cfg.starting_position == "LATEST" else "earliest",
            max_poll_records=cfg.max_poll_records, check_crcs=check_crcs,
            session_timeout_ms=int(cfg.session_timeout_s * 1000), group_instance_id=cfg.group_instance_id,
            heartbeat_interval_ms=min(3000, int(cfg.session_timeout_s * 1000) // 3),
            max_partition_fetch_bytes=cfg.max_partition_fetch_bytes, fetch_max_bytes=cfg.fetch_max_bytes,
            bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000), **cfg.kafka.client_kwargs())

    def _apply_rebalance(self, polled: dict) -> None:
        """Act on the assignments the listener recorded during poll() (kafka-python runs listeners on its
        IO thread, where blocking consumer calls are not allowed, so the work happens here)."""
        with self._rebalance_lock:
            events, self._rebalance_events = self._rebalance_events, []
        if not events:
            return
        try:
            self._take_assignment(events, polled)
        except KafkaError:
            with self._rebalance_lock:  # handled again after the next poll
                self._rebalance_events[:0] = events
            raise

    def _take_assignment(self, events: list, polled: dict) -> None:
        consumer, cfg = self._consumer, self.config
        before = set(self._buffers)
        owned, touched = set(before), set()
        for kind, tps in events:
            if kind == "revoked":
                owned -= tps
                touched |= tps
            else:
                owned |= tps
        self._paused -= touched  # kafka-python forgets pauses of partitions it re-assigns

        for tp in before - owned:  # moved to another member: it re-reads from the committed offset
            entry = self._inflight.pop(tp, None)
            if entry is not None:
                entry.cancel.set()
                self._orphans.append(entry)
            self._tracker.revoke(tp)
            self._buffers.pop(tp, None)
        for tp in before & owned & touched:  # revoked and given back (eager rebalance): carry on
            buf = self._buffers[tp]
            if buf.next_offset is not None:
                consumer.seek(tp, buf.next_offset)

        anchors = {}
        for tp in sorted(owned - before):
            committed = consumer.committed(tp)
            fetched = polled.pop(tp, None)  # re-read after the seek below, from a known start
            if committed is None:
                # A new group: resolve StartingPosition once and commit it, so a crash before the
                # first batch cannot make LATEST skip records produced meanwhile.
                if cfg.starting_position == "AT_TIMESTAMP":
                    found = consumer.offsets_for_times({tp: int(cfg.starting_position_timestamp * 1000)}).get(tp)
                    if found is None:  # nothing at or after the timestamp yet: start at the end
                        consumer.seek_to_end(tp)
                        committed = consumer.position(tp)
                    else:
                        committed = found.offset
                else:
                    committed = fetched[0].offset if fetched else consumer.position(tp)
                anchors[tp] = OffsetAndMetadata(committed, "", -1)
            consumer.seek(tp, committed)
            buf = PartitionBuffer(tp.topic, tp.partition, self._builder)
            buf.next_offset = committed
            self._tracker.assign(tp, committed)
            self._buffers[tp] = buf
        if anchors:
            consumer.commit(anchors)
            logger.info("new group %s: %s start committed at %s", cfg.group_id, cfg.starting_position,
                        {partition_key(tp.topic, tp.partition): o.offset for tp, o in anchors.items()})
        if owned:
            self._assigned_once = True
        logger.info("assigned %s", sorted(partition_key(tp.topic, tp.partition) for tp in owned),
                    extra={"topic": cfg.topic})

    # -- the loop's steps ------------------------------------------------------------------
    def _poll_timeout(self, now: float) -> float:
        timeout = _BUSY_POLL_S if self._inflight else _IDLE_POLL_S
        if len(self._inflight) < self.config.concurrency:
            for tp, buf in self._buffers.items():
                if len(buf) and tp not in self._inflight:
                    due = buf.window_deadline(self._window)
                    timeout = min(timeout, max(0.001, due - now))
        return timeout

    def _dispatch(self, executor: ThreadPoolExecutor, now: float) -> None:
        cfg = self.config
        if self._abort.is_set():
            return
        ready = [(buf.first_arrival, tp) for tp, buf in self._buffers.items()
                 if tp not in self._inflight and self._hold.get(tp, 0) <= now
                 and buf.ready(self._batch_size, self._window, cfg.max_payload_bytes, now)]
        for _, tp in sorted(ready, key=lambda item: item[0]):  # oldest waiting first: fair across partitions
            if len(self._inflight) >= cfg.concurrency:
                break
            batch = self._buffers[tp].take(self._batch_size, cfg.max_payload_bytes)
            self._tracker.dispatched(tp, batch[0].offset, batch[-1].offset)
            cancel = threading.Event()
            future = executor.submit(self._processor.process, batch, cancel)
            self._inflight[tp] = _InFlight(future, cancel, batch[0].offset, batch[-1].offset)

    def _reap(self, only=None) -> None:
        for tp in [tp for tp, e in self._inflight.items() if e.future.done() and (only is None or tp in only)]:
            entry = self._inflight.pop(tp)
            try:
                entry.future.result()
            except BatchAborted:
                self._tracker.aborted(tp)
                self._reread(tp, entry)
                continue
            except Exception:  # a bug or an unexpected library error: never commit past these records
                logger.exception("batch failed unexpectedly; re-reading it in %.0fs", _CRASH_HOLD_S,
                                 extra={"topic": tp.topic, "partition": tp.partition, "offset": entry.first,
                                        "last_offset": entry.last})
                self._tracker.aborted(tp)
                self._reread(tp, entry)
                self._hold[tp] = time.monotonic() + _CRASH_HOLD_S
                continue
            self._tracker.completed(tp, entry.last)
        self._commit()

    def _reread(self, tp, entry: _InFlight) -> None:
        """The batch's records left the buffer: seek back so they are fetched (and sent) again."""
        buf = self._buffers.get(tp)
        if buf is None or self._stop.is_set():
            return
        buf.clear(next_offset=entry.first)
        self._consumer.seek(tp, entry.first)

    def _commit(self) -> None:
        offsets = self._tracker.to_commit()
        if not offsets:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as exc:
            # Rebalance in progress or coordinator moving: keep the offsets, try again next loop.
            logger.warning("offset commit failed (%s); will retry", exc)
            return
        handled = 0
        for tp, offset in offsets.items():
            before = self._tracker.committed(tp)
            handled += offset - before if before is not None else 0
        self._tracker.mark_committed(offsets)
        self._stats.add(committed=handled)

    def _flow_control(self) -> None:
        """Pause a partition once a full batch is waiting behind the one in flight, or, while all buffers
        together hold more than _BUFFERED_PAYLOADS full invoke payloads, once it has anything buffered;
        resume when it moves. The second rule bounds memory when many partitions run large batches
        (6 x 10,000 records would otherwise keep ~45 MB of records waiting behind the batches in flight)."""
        cfg, consumer = self.config, self._consumer
        over_budget = sum(b.bytes for b in self._buffers.values()) >= _BUFFERED_PAYLOADS * cfg.max_payload_bytes
        to_pause, to_resume = [], []
        for tp, buf in self._buffers.items():
            full = len(buf) >= self._batch_size or buf.bytes >= cfg.max_payload_bytes or (over_budget and len(buf) > 0)
            if full and tp not in self._paused:
                to_pause.append(tp)
            elif not full and tp in self._paused:
                to_resume.append(tp)
        if to_pause:
            consumer.pause(*to_pause)
            self._paused.update(to_pause)
        if to_resume:
            consumer.resume(*to_resume)
            self._paused.difference_update(to_resume)

    def _refresh_lag(self) -> int | None:
        """Sum of end offset - committed offset over the assigned partitions (None if unknown)."""
        assigned = self._tracker.assigned()
        if not assigned:
            return None
        try:
            ends = self._consumer.end_offsets(assigned)
        except KafkaError as exc:
            logger.debug("end offsets unavailable: %s", exc)
            return None
        lag = {partition_key(tp.topic, tp.partition): max(0, end - (self._tracker.committed(tp) or 0))
               for tp, end in ends.items()}
        self._stats.set_lag(lag)
        return sum(lag.values())

    def _status(self) -> None:
        self._refresh_lag()
        s = self._stats.snapshot()
        rate = self._stats.rate()
        logger.info("status: lag %d (max %d) | %.0f rec/s | %d invocations p50 %.0fms p99 %.0fms | "
                    "%d retries | %d dead-lettered", s.lag, s.lag_max, rate, s.invocations, s.invoke_p50_ms,
                    s.invoke_p99_ms, s.retries, s.dead_lettered,
                    extra={"lag": s.lag, "lag_max": s.lag_max, "records_per_s": round(rate, 1),
                           "consumed": s.consumed, "invocations": s.invocations, "succeeded": s.succeeded,
                           "invoke_p50_ms": round(s.invoke_p50_ms, 1), "invoke_p99_ms": round(s.invoke_p99_ms, 1),
                           "retries": s.retries, "dead_lettered": s.dead_lettered, "in_flight": len(self._inflight)})

    # -- on-failure delivery (runs in worker threads) ------------------------------------
    def _deliver(self, failed: list[FailedRecord], cancel: threading.Event) -> None:
        if not self._destinations:
            # AWS without a destination: the records are discarded once retries are exhausted.
            logger.error("no on-failure destination configured: %d record(s) discarded", len(failed))
            return
        docs = [(f.record.key, build_on_failure_record(f, self._builder, self._function_arn)) for f in failed]
        for destination in self._destinations:
            attempt = 0
            while True:
                try:
                    destination.send(docs)
                    break
                except Exception as exc:  # noqa: BLE001 - the records may not be committed until this succeeds
                    attempt += 1
                    delay = backoff_delay(attempt, self.config.retry_base_delay_s, self.config.retry_max_delay_s)
                    rec = failed[0].record
                    logger.error("on-failure destination %s failed (%s); retry in %.1fs", destination.name, exc,
                                 delay, extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset})
                    if cancel.wait(delay):
                        raise BatchAborted() from exc

    # -- shutdown --------------------------------------------------------------------------
    def _shutdown(self, executor: ThreadPoolExecutor) -> None:
        consumer = self._consumer
        if self._inflight:
            logger.info("stopping: finishing %d batch(es) in flight", len(self._inflight))
        end = time.monotonic() + self.config.shutdown_timeout_s
        while self._inflight and time.monotonic() < end and not self._abort.is_set():
            self._reap()
            time.sleep(0.02)
        if self._inflight:
            for entry in self._inflight.values():
                entry.cancel.set()  # retries stop at their next wait; the batch stays uncommitted
            end = time.monotonic() + _ABORT_WAIT_S
            while any(not e.future.done() for e in self._inflight.values()) and time.monotonic() < end:
                time.sleep(0.02)
        try:
            self._reap()
        except Exception:  # noqa: BLE001 - closing anyway; uncommitted records are re-delivered
            logger.warning("final commit failed", exc_info=True)
        for tp, entry in list(self._inflight.items()) + [(None, o) for o in self._orphans]:
            logger.warning("batch not finished, left uncommitted (re-delivered on restart)",
                           extra={"offset": entry.first, "last_offset": entry.last,
                                  **({"topic": tp.topic, "partition": tp.partition} if tp else {})})
        try:
            consumer.close(autocommit=False)  # leaves the group, so partitions move at once
        except Exception:  # noqa: BLE001
            logger.warning("consumer close failed", exc_info=True)
        executor.shutdown(wait=False, cancel_futures=True)
        for destination in self._destinations:
            try:
                destination.close()
            except Exception:  # noqa: BLE001
                logger.warning("closing on-failure destination %s failed", destination.name, exc_info=True)
        s = self._stats.snapshot()
        logger.info("trigger stopped: %d consumed, %d succeeded, %d dead-lettered, %d committed, %d invocations",
                    s.consumed, s.succeeded, s.dead_lettered, s.committed, s.invocations)


def _fast_crc32c() -> bool:
    try:
        import crc32c  # noqa: F401 - kafka-python uses it for record CRCs when importable
    except ImportError:
        return False
    return True


def _release_parked_records(consumer) -> None:
    """Work around a kafka-python 3.0.12 bug that stalls a resumed partition for good.

    Records fetched for a partition while it is paused are parked (KAFKA-7548 port,
    dpkp/kafka-python#2981) and only handed back when `Fetcher._next_partition_records is None`;
    but that slot keeps the last, exhausted (falsy, not None) PartitionRecords, so the parked
    records never come back and the partition is never fetched again (one parked partition is
    restored per poll, so this runs before every poll). Emptying the exhausted slot (the consumer
    thread is the only one that reads it) lets poll() restore them.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:
        fetcher._next_partition_records = None


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread: only records what happened (see Trigger._apply_rebalance)."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def _record(self, kind: str, tps) -> None:
        if tps:
            with self.trigger._rebalance_lock:
                self.trigger._rebalance_events.append((kind, set(tps)))

    def on_partitions_revoked(self, revoked) -> None:
        self._record("revoked", revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self._record("assigned", assigned)
