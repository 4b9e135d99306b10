"""The tracker's part of `make demo`: run it beside the trigger (consumer + API, so the map can be
watched during the run), then reconcile the rows in PostgreSQL against the run's records in Kafka.

The tracker consumes with a consumer group of its own for the run, positioned at the topic's end
before the producer starts, so it reads exactly the run's records. The recount reads those records
back from Kafka and decodes them with the tracker's own decoder: the distinct (icao24, position
time) keys must equal the rows stored for that offset range, and the malformed ones the rejects.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from infra.demo import observe

from infra.stack import postgres
from infra.progress import printer
from pipeline_common.kafka_client import KafkaSettings
from tracker.records import InvalidRecord, decode
from tracker.service import TrackerService
from tracker.settings import TrackerConfig

logger = logging.getLogger(__name__)


say = printer("[demo]")


@dataclass
class TrackerRecount:
    records: int = 0
    distinct_positions: int = 0
    malformed: int = 0
    rows: int = 0
    rejects: int = 0
    checks: list = field(default_factory=list)
    # The run's distinct (icao24, time_position) and {partition: (first offset, end offset)}: the lake's
    # reconciliation (infra/demo/lake_recount.py) compares the Iceberg table with this same recount.
    keys: set = field(default_factory=set, repr=False)
    ranges: dict = field(default_factory=dict)


class DemoTracker:
    def __init__(self, topic: str, kafka: KafkaSettings, run_id: str) -> None:
        self.topic, self.kafka = topic, kafka
        self.group = f"demo-tracker-{run_id}"
        self.config = TrackerConfig.from_env(topic=topic, group_id=self.group, kafka=kafka)
        self.started_postgres = False
        self.starts: dict[TopicPartition, int] = {}
        self.service: TrackerService | None = None
        self.since: datetime | None = None

    def start(self, since: datetime) -> None:
        self.since = since
        pg = postgres.PostgresConfig.from_env()
        if postgres.ready(self.config.database) is not None:
            if pg.external:
                raise postgres.PostgresError(f"DATABASE_URL does not answer: {postgres.ready(self.config.database)}")
            postgres.start(pg)
            self.started_postgres = True
        self.starts = self._position_group_at_end()
        self.service = TrackerService(self.config)
        try:
            self.service.start()
            say(f"tracker (group {self.group}) -> PostgreSQL; live map: {self.service.url}  (API: {self.service.url}docs)")
        except RuntimeError as exc:
            say(f"tracker API not served ({exc}); storing only")
            self.service = TrackerService(self.config, serve_api=False)
            self.service.start()

    def _position_group_at_end(self) -> dict[TopicPartition, int]:
        """Commit the topic's current end offsets for the run's group: it starts at the run's first record."""
        consumer = KafkaConsumer(**self.kafka.client_kwargs(), group_id=self.group, enable_auto_commit=False)
        try:
            partitions = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or [])]
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
            return dict(ends)
        finally:
            consumer.close()

    def finish(self, produced: int, timeout_s: float = 120) -> TrackerRecount:
        """Wait until the tracker has stored (and committed) everything produced, stop it, reconcile.
        A PostgreSQL this started keeps running until ``close``: the lake's catalog is in it too."""
        stats = self.service.stats
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (stats.consumed >= produced and stats.consumer_lag == 0):
            time.sleep(1)
        self.service.stop()
        recount = self.recount()
        stored_total = stats.positions_total
        recount.checks = [
            ("the tracker stored every distinct position exactly once",
             recount.rows == recount.distinct_positions,
             f"{recount.rows} rows vs {recount.distinct_positions} distinct in Kafka"),
            ("the tracker kept every malformed record with its reason", recount.rejects == recount.malformed,
             f"{recount.rejects} rejects vs {recount.malformed} malformed"),
            ("the tracker's own count agrees with PostgreSQL", stored_total == recount.rows,
             f"{stored_total} vs {recount.rows}"),
        ]
        return recount

    def close(self, keep_running: bool = False) -> None:
        """Stop the PostgreSQL ``start`` started, unless asked to keep it (--keep-stack: `make lake-sql`
        and `make psql` read it afterwards)."""
        if self.started_postgres and not keep_running:
            postgres.stop()
        self.started_postgres = False

    def recount(self, timeout_s: float = 120) -> TrackerRecount:
        """The run's records read back from Kafka (within `timeout_s`) against the rows PostgreSQL holds for them."""
        recount, keys = TrackerRecount(), set()
        tps = list(self.starts)
        end_by_partition = observe.end_offsets(self.kafka, self.topic)  # production has stopped: final
        ends = {tp: end_by_partition.get(tp.partition, 0) for tp in tps}
        for record in observe.read_topic(self.kafka, self.topic, until=end_by_partition, timeout_s=timeout_s,
                                         start_offsets={tp.partition: o for tp, o in self.starts.items()}):
            recount.records += 1
            try:
                p = decode(record.value, record.partition, record.offset, record.headers)
            except InvalidRecord:
                recount.malformed += 1
                continue
            keys.add((p.icao24, p.time_position))
        recount.distinct_positions = len(keys)
        recount.keys = keys
        recount.ranges = {tp.partition: (self.starts[tp], ends[tp]) for tp in tps}
        ranges = [(tp.partition, self.starts[tp], ends[tp]) for tp in tps]
        where = " OR ".join(["(kafka_partition = %s AND kafka_offset >= %s AND kafka_offset < %s)"] * len(ranges))
        params = [v for r in ranges for v in r]
        with psycopg.connect(self.config.database, autocommit=True) as conn:
            recount.rows = conn.execute(f"SELECT count(*) FROM positions WHERE ingested_at >= %s AND ({where})",
                                        [self.since, *params]).fetchone()[0]
            recount.rejects = conn.execute(
                f"SELECT count(*) FROM tracker_rejects WHERE topic = %s AND rejected_at >= %s AND ({where})",
                [self.topic, self.since, *params]).fetchone()[0]
        return recount
