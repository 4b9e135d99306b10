"""The archiver's exactly-once rules on a real PyIceberg catalog (SQLite, local warehouse) with a stand-in
consumer that serves a fixed topic: a zombie's commit is refused and it resumes from the table, a "kill"
between the rejects commit and the positions commit doubles nothing, a failing S3 or catalog is retried
with the batch kept and the group's offsets committed only after the table's."""
from __future__ import annotations

import threading
from collections import namedtuple

import pytest

from archiver.archiver import Archiver
from archiver.settings import ArchiverConfig
from lakehouse.catalog import committed_offsets, load_catalog, rejects_identifier
from pipeline_common.state_codec import CONTENT_TYPE_HEADER, PROTOBUF, encode_state
from saved_events import load_event

TOPIC = "aviation-data"
Record = namedtuple("Record", "topic partition offset value headers")


def state(n: int, tick: int) -> dict:
    s = load_event("raw_state.json")
    s.update(icao24=f"{0xa00000 + n:06x}", time_position=1_765_000_000 + tick, last_contact=1_765_000_000 + tick)
    return s


def make_topic(partitions: int = 3, per_partition: int = 40) -> dict[int, list[tuple[bytes, list]]]:
    """Distinct positions (some as Protobuf), a malformed record and a repeated position in each partition."""
    topic = {}
    for p in range(partitions):
        values = []
        for i in range(per_partition):
            s = state(p * 1000 + i % 10, i // 10)
            if i % 3 == 0:
                values.append((encode_state(s, PROTOBUF), [(CONTENT_TYPE_HEADER, PROTOBUF.encode())]))
            else:
                values.append((encode_state(s), []))
        values.insert(5, (b'{"icao24": "zz"}', []))
        values.insert(9, values[8])  # the producer sent one position twice
        topic[p] = values
    return topic


class StandInConsumer:
    """What the archiver uses of KafkaConsumer, over an in-memory topic; sets `idle` once drained."""

    def __init__(self, topic: dict, idle: threading.Event, batch: int = 7) -> None:
        self.topic, self.idle, self.batch = topic, idle, batch
        self.position: dict[int, int] = {}
        self.commits: list[dict[int, int]] = []
        self.events: list[str] = []

    def partitions_for_topic(self, _name):
        return set(self.topic)

    def assign(self, tps):
        self.position = {tp.partition: 0 for tp in tps}

    def seek(self, tp, offset):
        self.position[tp.partition] = offset

    def seek_to_beginning(self, tp):
        self.position[tp.partition] = 0

    def poll(self, timeout_ms=0, max_records=None):
        out = {}
        for p, at in self.position.items():
            chunk = self.topic[p][at:at + self.batch]
            if chunk:
                out[p] = [Record(TOPIC, p, at + i, v, h) for i, (v, h) in enumerate(chunk)]
                self.position[p] = at + len(chunk)
        if not out:
            self.idle.set()
        return out

    def commit(self, offsets):
        self.events.append("kafka-commit")
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})

    def end_offsets(self, tps):
        return {tp: len(self.topic[tp.partition]) for tp in tps}

    def close(self, autocommit=False):
        pass


@pytest.fixture
def config(tmp_path) -> ArchiverConfig:
    return ArchiverConfig.from_env({}, lake={"catalog_uri": f"sqlite:///{tmp_path}/catalog.db",
                                             "warehouse": f"file://{tmp_path}/warehouse", "namespace": "unit",
                                             "commit_rows": 25, "commit_interval_s": 60})


def archiver(config, topic, batch=7):
    idle = threading.Event()
    consumer = StandInConsumer(topic, idle, batch)
    a = Archiver(config)
    a._make_consumer = lambda _timeout: consumer
    return a, consumer, idle


def table_rows(config):
    catalog = load_catalog(config.lake)
    positions = catalog.load_table(config.lake.identifier).scan().to_arrow()
    rejects = catalog.load_table(rejects_identifier(config.lake)).scan().to_arrow()
    return positions, rejects


def distinct_positions(topic) -> int:
    from tracker.records import InvalidRecord, decode
    keys = set()
    for p, values in topic.items():
        for o, (v, h) in enumerate(values):
            try:
                r = decode(v, p, o, h)
            except InvalidRecord:
                continue
            keys.add((r.icao24, r.time_position))
    return len(keys)


def test_everything_archived_once_and_the_group_offsets_follow_the_table(config):
    topic = make_topic()
    a, consumer, idle = archiver(config, topic)
    stats = a.run(idle)
    positions, rejects = table_rows(config)
    assert positions.num_rows == distinct_positions(topic) == 3 * 40
    assert sorted(rejects.column("offset").to_pylist()) == [5, 5, 5]
    assert "icao24 is not 6 hex digits" in rejects.column("reason")[0].as_py()
    assert stats.duplicates == 3 and stats.rejects == 3
    table = load_catalog(config.lake).load_table(config.lake.identifier)
    assert committed_offsets(table, TOPIC) == {p: len(v) for p, v in topic.items()} == consumer.commits[-1]


def test_a_restart_resumes_from_the_table_and_stores_nothing_twice(config):
    topic = make_topic()
    first, _, idle = archiver(config, topic)
    first.run(idle)
    # new records, and the last position of each partition sent again (it was in the last commit)
    more = {p: values + [(encode_state(state(p * 1000 + 99, 50)), []), values[-1]] for p, values in topic.items()}
    second, consumer, idle = archiver(config, more)
    stats = second.run(idle)
    positions, rejects = table_rows(config)
    assert positions.num_rows == 3 * 40 + 3 and rejects.num_rows == 3
    assert stats.consumed == 6 and stats.duplicates == 3  # it read only what the table did not have


def test_a_zombies_commit_is_refused_and_it_resumes_from_the_winners_offsets(config):
    topic = make_topic(partitions=1)
    winner, _, idle = archiver(config, topic)
    zombie, zombie_consumer, zombie_idle = archiver(config, topic)
    zombie._load_tables(threading.Event())  # the zombie loaded the table before the winner committed
    zombie._consumer = zombie_consumer
    zombie._assign(threading.Event())
    winner.run(idle)
    zombie._take(zombie_consumer.poll(max_records=10))
    zombie._commit(threading.Event())
    assert zombie.stats.refused == 1 and zombie.stats.rows == 0
    assert zombie_consumer.position == {0: len(topic[0])}  # sought to the table's offsets
    positions, rejects = table_rows(config)
    assert positions.num_rows == 40 and rejects.num_rows == 1


class Killed(BaseException):
    """kill -9 stand-in: nothing after it runs in the process, not even `except Exception`."""


def test_a_kill_between_the_rejects_commit_and_the_positions_commit_doubles_nothing(config, monkeypatch):
    topic = make_topic(partitions=2)
    victim, _, idle = archiver(config, topic)
    from pyiceberg.table import Transaction
    real_append = Transaction.append

    def append(tx, df, *args, **kwargs):
        if "icao24" in df.column_names:
            raise Killed()
        return real_append(tx, df, *args, **kwargs)
    monkeypatch.setattr(Transaction, "append", append)
    with pytest.raises(Killed):
        victim.run(idle)
    monkeypatch.setattr(Transaction, "append", real_append)
    positions, rejects = table_rows(config)
    assert positions.num_rows == 0 and rejects.num_rows > 0  # the rejects of the first batch landed
    restarted, _, idle = archiver(config, topic)
    restarted.run(idle)
    positions, rejects = table_rows(config)
    assert positions.num_rows == 2 * 40 and sorted(rejects.column("partition").to_pylist()) == [0, 1]


def test_a_failing_lake_is_retried_with_the_batch_kept_and_kafka_committed_only_after(config, monkeypatch):
    config = ArchiverConfig.from_env({}, lake=config.lake, retry_max_s=0.1)
    topic = make_topic(partitions=1)
    a, consumer, idle = archiver(config, topic)
    from pyiceberg.table import Transaction
    real_append, failures = Transaction.append, []

    def append(tx, df, *args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            consumer.events.append("lake-failed")
            raise OSError("S3 endpoint not reachable")
        consumer.events.append("lake-commit")
        return real_append(tx, df, *args, **kwargs)
    monkeypatch.setattr(Transaction, "append", append)
    stats = a.run(idle)
    assert stats.failures == 2 and stats.refused == 0
    assert consumer.events[:4] == ["lake-failed", "lake-failed", "lake-commit", "lake-commit"]  # rejects, positions
    assert consumer.events[4] == "kafka-commit"
    positions, rejects = table_rows(config)
    assert positions.num_rows == 40 and rejects.num_rows == 1
