"""The mapping's Kafka consumer group: connect, subscribe, follow assignments, resolve the starting
position, and keep kafka-python going where it is known to stall.

One object per mapping, used only from the mapping's consumer thread (kafka-python is not
thread-safe). The run loop asks it for the consumer and, after each poll, for what the last
rebalance changed (`take_rebalance`); everything about partitions, positions and the group lives here.

Starting position (AWS semantics): a group with committed offsets resumes from them; a new group
starts at TRIM_HORIZON (earliest), LATEST, or AT_TIMESTAMP. The resolved start is committed at once,
so a crash before the first batch cannot make LATEST skip records produced meanwhile.

kafka-python 3.0.12 workarounds (each with a test that fails if it is removed while the library still
behaves this way: tests/unit/test_trigger_consumer_group.py and
tests/integration/test_consumer_group_on_broker.py):
1. `release_parked_records`: a resumed partition can stop being fetched for good. KAFKA-7548's port
   (dpkp/kafka-python#2981, "Retain fetched data for paused partitions") parks records fetched for a
   paused partition and restores them only when `Fetcher._next_partition_records is None`; that slot
   keeps the last, exhausted (falsy, not None) PartitionRecords, so the parked records never return.
2. The rebalance listener runs on kafka-python's IO thread, where a blocking consumer call
   (committed(), offsets_for_times(), commit()) raises "RuntimeError: Cannot block on net.run() from
   the IO thread itself" (dpkp/kafka-python#2968): the listener only records what happened and
   `take_rebalance` acts on it on the consumer thread after poll() returns.
And a safety net, `rebalance_stuck`/`replace_consumer` on pipeline_common.kafka_client.RebalanceWatchdog
(shared with the tracker): a join can hang for good (seen when topic metadata arrives just after the
first join: the leader assigns nothing, rejoins, the SyncGroup answer is never applied and heartbeats
stop). No upstream report matches it exactly; the closest are dpkp/kafka-python#3131/#3132 (partitions
stuck after a rebalance with a listener, fixed in 3.0.9 for the fetch side). After STUCK_REBALANCE_S
with nothing in flight the consumer is closed and recreated, which loses nothing.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline_common.kafka_client import RebalanceWatchdog, connect_with_retry

from .esm_event import partition_key
from .mapping import TriggerConfig

logger = logging.getLogger(__name__)

# A join/sync that has not completed in this long is treated as hung.
STUCK_REBALANCE_S = 60.0


@dataclass
class Rebalance:
    """What one or more rebalances changed, as the run loop must act on it."""
    lost: set = field(default_factory=set)          # no longer ours: cancel, forget, never commit
    kept_touched: set = field(default_factory=set)  # revoked and given back (eager rebalance): seek and carry on
    gained: dict = field(default_factory=dict)      # new: {tp: offset to start from (already sought)}
    owned: set = field(default_factory=set)


class ConsumerGroup:
    def __init__(self, config: TriggerConfig, consumer=None) -> None:
        self.config = config
        self.consumer = consumer
        self.assigned_once = False
        self._watchdog = RebalanceWatchdog(STUCK_REBALANCE_S)
        self._lock = threading.Lock()
        self._events: list = []
        self._owned: set = set()

    # -- connect and subscribe --------------------------------------------------------------
    def start(self, stop: threading.Event):
        """Connect (retrying an unreachable broker) and subscribe; None if asked to stop meanwhile."""
        if self.consumer is None:
            self.consumer = self._connect(stop)
            if self.consumer is None:
                return None
        self._subscribe(self.consumer)
        return self.consumer

    def _subscribe(self, consumer) -> None:
        consumer.subscribe(list(self.config.topics), listener=_Listener(self))
        self.consumer = consumer
        self._watchdog.reset()

    def _connect(self, stop: threading.Event):
        """The consumer, retried while the broker cannot be reached for up to TRIGGER_CONNECT_TIMEOUT_S;
        None if asked to stop meanwhile."""
        return connect_with_retry(lambda bootstrap_s: self.make_consumer(bootstrap_timeout_s=bootstrap_s),
                                  self.config.kafka, timeout_s=self.config.connect_timeout_s, stop=stop,
                                  topic=self.config.topic)

    def make_consumer(self, bootstrap_timeout_s: float = 30.0):
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

    # -- the stuck-rebalance safety net ---------------------------------------------------------
    @property
    def rebalancing_since(self) -> float | None:
        """When the current rebalance was first seen; None while the membership is stable."""
        return self._watchdog.since

    def rebalance_stuck(self, now: float, busy: bool) -> bool:
        """True when the membership has been rebalancing for longer than STUCK_REBALANCE_S and nothing of
        ours is in flight or buffered (`busy` False): only then is replacing the consumer lossless."""
        return self._watchdog.stuck(self.consumer, now) and not busy

    def replace_consumer(self) -> set:
        """Close the stuck consumer and subscribe a new one; returns the partitions that were ours."""
        self._watchdog.retire(self.consumer, self.config.group_id, self.config.topic)
        lost, self._owned = self._owned, set()
        with self._lock:
            self._events.clear()
        self._subscribe(self.make_consumer())
        return lost

    # -- assignments ----------------------------------------------------------------------------
    def record(self, kind: str, tps) -> None:
        """Called by the listener on kafka-python's IO thread: remember only (workaround 2)."""
        if tps:
            with self._lock:
                self._events.append((kind, set(tps)))

    def take_rebalance(self, polled: dict, next_offsets: dict) -> Rebalance | None:
        """Act on the assignments recorded during the last poll(); None when nothing changed.
        `next_offsets` gives, for partitions kept across an eager rebalance, where to carry on."""
        with self._lock:
            events, self._events = self._events, []
        if not events:
            return None
        try:
            return self._apply(events, polled, next_offsets)
        except KafkaError:
            with self._lock:  # handled again after the next poll
                self._events[:0] = events
            raise

    def _apply(self, events: list, polled: dict, next_offsets: dict) -> Rebalance:
        consumer, cfg = self.consumer, self.config
        before = set(self._owned)
        owned, touched = set(before), set()
        for kind, tps in events:
            if kind == "revoked":
                owned -= tps
                touched |= tps
            else:
                owned |= tps
        change = Rebalance(lost=before - owned, kept_touched=before & owned & touched, owned=owned)
        for tp in change.kept_touched:
            if next_offsets.get(tp) is not None:
                consumer.seek(tp, next_offsets[tp])
        anchors = {}
        for tp in sorted(owned - before):
            committed = consumer.committed(tp)
            fetched = polled.pop(tp, None)  # re-read after the seek below, from a known start
            if committed is None:
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
            change.gained[tp] = committed
        if anchors:
            consumer.commit(anchors)
            logger.info("new group %s: %s start committed at %s", cfg.group_id, cfg.starting_position,
                        {partition_key(tp.topic, tp.partition): o.offset for tp, o in anchors.items()})
        self._owned = owned
        if owned:
            self.assigned_once = True
        logger.info("assigned %s", sorted(partition_key(tp.topic, tp.partition) for tp in owned),
                    extra={"topic": cfg.topic, "group": cfg.group_id})
        return change


def release_parked_records(consumer) -> None:
    """Workaround 1 (see the module docstring): empty the exhausted in-line slot before each poll so
    that poll() restores parked records (one parked partition per poll). The consumer thread is the
    only one that reads this slot."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:
        fetcher._next_partition_records = None


def _fast_crc32c() -> bool:
    try:
        import crc32c  # noqa: F401 - kafka-python uses it for record CRCs when importable
    except ImportError:
        return False
    return True


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread: only records what happened (workaround 2)."""

    def __init__(self, group: ConsumerGroup) -> None:
        self.group = group

    def on_partitions_revoked(self, revoked) -> None:
        self.group.record("revoked", revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self.group.record("assigned", assigned)
