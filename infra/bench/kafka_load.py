"""Kafka side of the benchmarks: the run's own topics, pre-filled records, and a consumer group's progress.

Pre-filling runs in loader subprocesses (one per core) with the producer's own Kafka settings
(acks=all, idempotent, gzip, same linger and batch size) and the producer's own JSON encoding of
synthetic fleet states, so the trigger reads exactly what the real producer writes:

    python -m infra.bench.kafka_load prefill --topic T --count N --kind on-ground|fleet [--seed S]
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, UnknownTopicOrPartitionError
from kafka.partitioner.default import murmur2

from infra.stack.servers import create_topics
from pipeline_common.kafka_client import KafkaSettings

ROOT = Path(__file__).resolve().parent.parent.parent
logger = logging.getLogger(__name__)

KINDS = ("on-ground", "fleet")


# ---------------------------------------------------------------- topics
def admin(kafka: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(**kafka.client_kwargs(), client_id="flight-bench")


def create_topic(kafka: KafkaSettings, name: str, partitions: int) -> None:
    """Create the topic (infra.stack.servers.create_topics) and return once every partition has a leader."""
    create_topics({**kafka.client_kwargs(), "client_id": "flight-bench"}, [NewTopic(name, partitions, 1)])


def delete_topics(kafka: KafkaSettings, names: list[str]) -> None:
    if not names:
        return
    client = admin(kafka)
    try:
        client.delete_topics(names)
    except UnknownTopicOrPartitionError:
        pass
    except KafkaError as exc:
        logger.warning("could not delete topics %s: %s", names, exc)
    finally:
        client.close()


def delete_groups(kafka: KafkaSettings, group_ids: list[str]) -> None:
    if not group_ids:
        return
    client = admin(kafka)
    try:
        client.delete_groups(group_ids)
    except KafkaError as exc:
        logger.warning("could not delete consumer groups %s: %s", group_ids, exc)
    finally:
        client.close()


# ---------------------------------------------------------------- consumer-group progress
class GroupProgress:
    """Polls a consumer group's committed offsets: what the trigger has fully handled, seen from outside.

    The trigger commits only after a batch is handled (invoked successfully or dead-lettered), so
    committed offsets over time are its throughput, measured without trusting its own counters.
    """

    def __init__(self, kafka: KafkaSettings, group_id: str, interval_s: float = 0.25) -> None:
        self.group_id = group_id
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []  # (monotonic time, committed records)
        self._admin = admin(kafka)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-group-progress", daemon=True)
        self.joined = False  # the group committed its start offsets: partitions are assigned

    def _read(self) -> int | None:
        try:
            offsets = self._admin.list_group_offsets(self.group_id).get(self.group_id) or {}
        except KafkaError as exc:
            logger.debug("group offsets unavailable: %s", exc)
            return None
        if offsets:
            self.joined = True
        return sum(max(0, o.offset) for o in offsets.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop.wait(self.interval_s)

    def start(self) -> "GroupProgress":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._admin.close()

    @property
    def committed(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def time_reaching(self, target: float) -> float | None:
        """When the committed count first reached `target`, interpolated between samples."""
        prev = None
        for t, value in self.samples:
            if value >= target:
                if prev is None or value == prev[1]:
                    return t
                return prev[0] + (t - prev[0]) * (target - prev[1]) / (value - prev[1])
            prev = (t, value)
        return None

    def steady_rate(self, total: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
        """Records/s between `lo` and `hi` of `total` committed: the steady state, without start-up and tail."""
        t_lo, t_hi = self.time_reaching(total * lo), self.time_reaching(total * hi)
        if t_lo is None or t_hi is None or t_hi <= t_lo:
            return None
        return total * (hi - lo) / (t_hi - t_lo)

    def rate_between(self, t0: float, t1: float) -> float | None:
        """Records/s committed between two moments (for runs that stop before the topic is drained)."""
        inside = [(t, v) for t, v in self.samples if t0 <= t <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


# ---------------------------------------------------------------- pre-filled records
def fleet_messages(kind: str, seed: int, count: int, value_format: str = "json") -> list[tuple[bytes, bytes]]:
    """(key, value) pairs as the producer writes them (in PRODUCER_FORMAT ``value_format``); `on-ground`
    states are parked at the gate, so the function filters every one of them out (nothing reaches SNS)."""
    from pipeline_common.state_codec import FORMATS
    from producer.kafka_sink import encode_value
    from producer.synthetic import SyntheticFleet

    fleet = SyntheticFleet(min(count, 8000), seed, time.time())
    out = []
    for state in fleet.tick(time.time()):
        if kind == "on-ground":
            state.update(on_ground=True, baro_altitude=None, geo_altitude=None, vertical_rate=None,
                         velocity=0.0)
        out.append((state["icao24"].encode(), encode_value(state, FORMATS[value_format])))
    return out


def prefill(topic: str, count: int, kind: str, seed: int, kafka: KafkaSettings, value_format: str = "json") -> float:
    """Write `count` records (the fleet's states, cycled) to `topic`; returns seconds taken."""
    from pipeline_common.state_codec import FORMATS, record_headers
    from producer.kafka_sink import PRODUCER_CONFIG

    messages = fleet_messages(kind, seed, count, value_format)
    headers = record_headers(FORMATS[value_format]) or None  # as the producer labels its records
    producer = KafkaProducer(**kafka.client_kwargs(), **PRODUCER_CONFIG)
    try:
        partitions = sorted(producer.partitions_for(topic))
        # The default partitioner's choice (murmur2 of the key), computed once per aircraft.
        keyed = [(key, value, partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)])
                 for key, value in messages]
        started = time.perf_counter()
        send, n = producer.send, len(keyed)
        for i in range(count):
            key, value, partition = keyed[i % n]
            send(topic, key=key, value=value, partition=partition, headers=headers)
        producer.flush(timeout=120)
        return time.perf_counter() - started
    finally:
        producer.close(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fill = sub.add_parser("prefill", help="write N synthetic records to a topic")
    fill.add_argument("--topic", required=True)
    fill.add_argument("--count", type=int, required=True)
    fill.add_argument("--kind", choices=KINDS, default="on-ground")
    fill.add_argument("--seed", type=int, default=42)
    fill.add_argument("--format", choices=("json", "protobuf"), default="json", help="record wire format")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    seconds = prefill(args.topic, args.count, args.kind, args.seed, KafkaSettings.from_env(), args.format)
    print(f"prefilled {args.count} {args.kind} records into {args.topic} in {seconds:.1f}s "
          f"({args.count / seconds:.0f}/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
