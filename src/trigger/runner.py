"""One mapping's run loop: poll -> dispatch -> reap -> commit.

One thread owns the KafkaConsumer (kafka-python is not thread-safe): it polls, fills the
per-partition buffers (dropping records that match no filter of FilterCriteria), hands ready
batches to a pool of `concurrency` invoke workers (at most one batch per partition, so order holds
within a partition), and commits offsets once a batch is fully handled. Buffers are bounded by
pausing partitions that are a full batch ahead. The consumer group (connect, assignment, starting
position, kafka-python workarounds) is `consumer_group.py`; dead-letter delivery is `on_failure.py`.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline_common.kafka_client import BrokerUnavailable  # noqa: F401 (re-exported for __main__ and callers)

from .batch_processor import BatchAborted, BatchProcessor
from .batching import PartitionBuffer
from .consumer_group import ConsumerGroup, release_parked_records
from .esm_event import EsmEventBuilder, partition_key
from .event_filter import RecordFilter
from .invoker import LambdaInvoker
from .lag_trend import LagTrend
from .mapping import TriggerConfig
from .offsets import OffsetTracker
from .on_failure import OnFailureDelivery, destinations_for
from .stats import StatsCollector, TriggerStats

logger = logging.getLogger(__name__)

__all__ = ["BrokerUnavailable", "Trigger", "TriggerStats"]

_IDLE_POLL_S = 0.2
_BUSY_POLL_S = 0.01      # while batches are in flight: how soon a finished batch is committed
_CRASH_HOLD_S = 5.0      # a batch that raised unexpectedly is re-read after this pause
_ABORT_WAIT_S = 5.0
_BUFFERED_PAYLOADS = 4   # records waiting behind the batches in flight, in full invoke payloads (all partitions)


@dataclass
class _InFlight:
    future: Future
    cancel: threading.Event
    first: int
    last: int  # the last offset the batch accounts for (filtered records after its last record included)


class Trigger:
    """`Trigger(config).run(...)` consumes until stopped; `.stats` is safe to read from any thread."""

    def __init__(self, config: TriggerConfig | None = None, *, invoker=None, destinations=None,
                 consumer=None) -> None:
        self.config = config or TriggerConfig.from_env()
        cfg = self.config
        self._stats = StatsCollector()
        self._lag_trend = LagTrend()
        self._builder = EsmEventBuilder(cfg.kafka.bootstrap_servers, cfg.event_source, cfg.event_source_arn)
        self._invoker = invoker or LambdaInvoker(
            cfg.function_name, cfg.qualifier, max_pool_connections=cfg.concurrency + 2,
            read_timeout_s=cfg.invoke_read_timeout_s, connect_timeout_s=cfg.invoke_connect_timeout_s)
        self._function_arn = cfg.function_name + (f":{cfg.qualifier}" if cfg.qualifier else "")
        self._on_failure = OnFailureDelivery(
            destinations_for(cfg) if destinations is None else destinations, self._builder, self._function_arn,
            cfg.retry_base_delay_s, cfg.retry_max_delay_s, self._stats)
        self._processor = BatchProcessor(cfg, self._invoker, self._builder, self._on_failure.deliver, self._stats)
        self._filter = RecordFilter.from_criteria(cfg.filter_criteria)
        self._batch_size = 1 if cfg.per_message else cfg.batch_size
        self._window = 0.0 if cfg.per_message else cfg.maximum_batching_window_s
        self._group = ConsumerGroup(cfg, consumer)
        self._tracker = OffsetTracker()
        self._buffers: dict = {}
        self._inflight: dict = {}
        self._orphans: list[_InFlight] = []  # batches of partitions lost to a rebalance, until they end
        self._hold: dict = {}
        self._paused: set = set()
        self._stop = threading.Event()
        self._abort = threading.Event()

    # -- public --------------------------------------------------------------------------
    @property
    def stats(self) -> TriggerStats:
        return self._stats.snapshot()

    @property
    def _consumer(self):
        return self._group.consumer

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
        if self._group.start(stop) is None:  # stopped while waiting for the broker
            return self.stats
        executor = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="trigger-invoke")
        logger.info("trigger started: %s -> %s (group %s, %s, batch %d, window %.1fs, concurrency %d, "
                    "retries %s, on failure %s%s)", ",".join(cfg.topics), self._function_arn, cfg.group_id,
                    cfg.starting_position, self._batch_size, self._window, cfg.concurrency,
                    cfg.effective_retry_attempts, self._on_failure.names() or "none",
                    f", {len(self._filter)} filter(s)" if self._filter else "",
                    extra={"topic": cfg.topic, "mode": cfg.mode, "group": cfg.group_id})
        last_activity = started
        next_status = started + cfg.status_interval_s
        try:
            while not (stop.is_set() or self._stop.is_set()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                polled = self._poll(now, stop)
                if polled is None:
                    continue
                now = time.monotonic()
                consumed = self._buffer(polled, now)
                self._reap()
                self._dispatch(executor, now)
                self._flow_control()
                if consumed or self._inflight or any(len(b) for b in self._buffers.values()):
                    last_activity = now
                # Never "idle" mid-rebalance: with nothing assigned, the lag looks like zero.
                if until_idle_s is not None and now - last_activity >= until_idle_s and (
                        self._group.rebalancing_since is None) and (
                        self._group.assigned_once or now - started > until_idle_s + 60):
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

    # -- the loop's steps ------------------------------------------------------------------
    def _poll(self, now: float, stop: threading.Event) -> dict | None:
        busy = bool(self._inflight) or any(len(b) for b in self._buffers.values())
        if self._group.rebalance_stuck(now, busy):
            for tp in self._group.replace_consumer():
                self._forget(tp)
            self._paused.clear()
        release_parked_records(self._consumer)
        try:
            polled = self._consumer.poll(timeout_ms=int(self._poll_timeout(now) * 1000))
            change = self._group.take_rebalance(
                polled, {tp: buf.next_offset for tp, buf in self._buffers.items()})
        except KafkaError as exc:
            # Broker restarting, coordinator moving: kafka-python reconnects; try again shortly.
            logger.warning("Kafka error while polling (%s); retrying", exc, extra={"topic": self.config.topic})
            stop.wait(1.0)
            return None
        if change is not None:
            self._paused -= change.lost | change.kept_touched  # kafka-python forgets pauses on re-assignment
            for tp in change.lost:  # moved to another member: it re-reads from the committed offset
                entry = self._inflight.pop(tp, None)
                if entry is not None:
                    entry.cancel.set()
                    self._orphans.append(entry)
                self._forget(tp)
            for tp, start in change.gained.items():
                buf = PartitionBuffer(tp.topic, tp.partition, self._builder)
                buf.next_offset = start
                self._tracker.assign(tp, start)
                self._buffers[tp] = buf
        return polled

    def _forget(self, tp) -> None:
        self._tracker.revoke(tp)
        self._buffers.pop(tp, None)
        self._paused.discard(tp)

    def _buffer(self, polled: dict, now: float) -> int:
        consumed = filtered = 0
        record_filter = self._filter
        for tp, records in polled.items():
            buf = self._buffers.get(tp)
            if buf is None:
                continue
            if record_filter is None:
                consumed += buf.add(records, now)
            else:
                kept, dropped = buf.add_matching(records, record_filter.matches, now)
                consumed += kept + dropped
                filtered += dropped
        if consumed:
            self._stats.add(consumed=consumed, filtered=filtered)
        if record_filter is not None:
            self._commit_filtered()
        return consumed

    def _commit_filtered(self) -> None:
        """A partition whose newest records all matched no filter, with nothing buffered or in flight
        before them: those offsets are handled (AWS commits records it filtered out)."""
        for tp, buf in self._buffers.items():
            if buf.filtered_upto is not None and not len(buf) and tp not in self._inflight:
                self._tracker.skipped(tp, buf.filtered_upto)
                buf.filtered_upto = None

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
            buf = self._buffers[tp]
            batch = buf.take(self._batch_size, cfg.max_payload_bytes)
            last = buf.taken_through
            self._tracker.dispatched(tp, batch[0].offset, last)
            cancel = threading.Event()
            future = executor.submit(self._processor.process, batch, cancel)
            self._inflight[tp] = _InFlight(future, cancel, batch[0].offset, last)

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
        # A batch of a partition lost to a rebalance is never committed here; once it has ended
        # (cancelled or finished) it is no one's concern any more.
        if self._orphans:
            self._orphans = [o for o in self._orphans if not o.future.done()]
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
        logger.info("status: %s lag %d (max %d) | %.0f rec/s | %d invocations p50 %.0fms p99 %.0fms | "
                    "%d retries | %d dead-lettered%s", self.config.label, s.lag, s.lag_max, rate, s.invocations,
                    s.invoke_p50_ms, s.invoke_p99_ms, s.retries, s.dead_lettered,
                    f" | {s.filtered} filtered out" if self._filter else "",
                    extra={"group": self.config.group_id, "filtered": s.filtered, "lag": s.lag, "lag_max": s.lag_max, "records_per_s": round(rate, 1),
                           "consumed": s.consumed, "invocations": s.invocations, "succeeded": s.succeeded,
                           "invoke_p50_ms": round(s.invoke_p50_ms, 1), "invoke_p99_ms": round(s.invoke_p99_ms, 1),
                           "retries": s.retries, "dead_lettered": s.dead_lettered, "in_flight": len(self._inflight)})
        behind = self._lag_trend.observe(time.monotonic(), s.lag, s.committed)
        if behind:
            logger.warning("%s %s", self.config.label, behind.advice(self._batch_size), extra={
                "group": self.config.group_id, "lag": s.lag, "records_in_per_s": round(behind.rate_in, 1),
                "records_out_per_s": round(behind.rate_out, 1), "topic": self.config.topic})

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
        self._orphans = [o for o in self._orphans if not o.future.done()]
        for tp, entry in list(self._inflight.items()) + [(None, o) for o in self._orphans]:
            logger.warning("batch not finished, left uncommitted (re-delivered on restart)",
                           extra={"offset": entry.first, "last_offset": entry.last,
                                  **({"topic": tp.topic, "partition": tp.partition} if tp else {})})
        try:
            consumer.close(autocommit=False)  # leaves the group, so partitions move at once
        except Exception:  # noqa: BLE001
            logger.warning("consumer close failed", exc_info=True)
        executor.shutdown(wait=False, cancel_futures=True)
        self._on_failure.close()
        s = self._stats.snapshot()
        logger.info("trigger stopped: %d consumed, %d succeeded, %d dead-lettered, %d committed, %d invocations",
                    s.consumed, s.succeeded, s.dead_lettered, s.committed, s.invocations)
