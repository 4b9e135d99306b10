"""Shared by the tracker's integration tests: an isolated schema on the real PostgreSQL, a fresh topic on
the real broker, records whose rows are known in advance, and `python -m tracker` as a process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from saved_events import load_event

ROOT = Path(__file__).resolve().parents[2]


def schema_url(database_url: str, schema: str) -> str:
    """The same server and database, with `schema` first on the search path (tables land there)."""
    sep = "&" if "?" in database_url else "?"
    return f"{database_url}{sep}options={quote(f'-c search_path={schema}')}"


@contextmanager
def isolated_schema(database_url: str):
    schema = f"it_tracker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(database_url, schema)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def fresh_topic(bootstrap: str, partitions: int = 3):
    name = f"it-tracker-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1)])
    try:
        yield name
    finally:
        try:
            admin.delete_topics([name])
        finally:
            admin.close()


def state(n: int, tick: int, t0: float) -> dict:
    """Aircraft n at tick `tick`: a distinct (icao24, time_position) for every (n, tick)."""
    s = load_event("raw_state.json")
    s.update(icao24=f"{0xa00000 + n:06x}", callsign=f"TST{n:04d}  ", time_position=t0 + tick,
             last_contact=t0 + tick, latitude=40 + (n % 100) * 0.1, longitude=-5 + (n // 100) * 0.1,
             baro_altitude=1000.0 + 10 * tick, on_ground=n % 10 == 0)
    return s


def produce(bootstrap: str, topic: str, values: list[bytes | dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for value in values:
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            key = (value.get("icao24") if isinstance(value, dict) else "bad").encode()
            producer.send(topic, key=key, value=body)
        producer.flush(30)
    finally:
        producer.close()


def stored_positions(bootstrap: str, topic: str, url: str, values: list, application: str) -> list:
    """``values`` produced to ``topic``, read back from the broker and decoded with the tracker's decoder, then
    written into the PostgreSQL at ``url`` with the tracker's writer: the same positions in Kafka and the database."""
    from infra.demo.observe import read_topic
    from pipeline_common.kafka_client import KafkaSettings
    from tracker import store
    from tracker.records import decode

    produce(bootstrap, topic, values)
    records = list(read_topic(KafkaSettings.from_env(bootstrap_servers=bootstrap), topic))
    positions = [decode(r.value, r.partition, r.offset, r.headers) for r in records]
    assert len(positions) == len(values)
    with store.connect(url, application) as conn:
        store.migrate(conn)
        store.PositionWriter(conn).write(positions)
    return positions


def count(url: str, table: str = "positions") -> int:
    """Rows as another connection sees them (committed only)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def keys(url: str) -> set[tuple[str, float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT icao24, extract(epoch FROM time_position)::float8 FROM positions").fetchall()
    return {(icao, float(t)) for icao, t in rows}


def wait_for(predicate, timeout_s: float, interval_s: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except psycopg.Error as exc:  # the database may be restarting, the schema not migrated yet
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


@contextmanager
def tracker_process(env: dict, log_path: Path, *args: str):
    """`python -m tracker` with `env`, its output in `log_path` (printed when the block fails);
    terminated (killed after 20 s) when the block ends."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tracker", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    except BaseException:
        print(log_path.read_text()[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def topic_positions(bootstrap: str, topic: str) -> dict[tuple[int, int], tuple[str, float]]:
    """{(partition, offset): (icao24, epoch seconds)} of every record of `topic` that decodes to a position,
    read back from the broker (what Kafka holds, not what a producer said it sent)."""
    from infra.demo.observe import read_topic
    from pipeline_common.kafka_client import KafkaSettings
    from tracker.records import InvalidRecord, decode

    found = {}
    for record in read_topic(KafkaSettings.from_env(bootstrap_servers=bootstrap), topic):
        try:
            p = decode(record.value, record.partition, record.offset, record.headers)
        except InvalidRecord:
            continue
        found[(record.partition, record.offset)] = (p.icao24, p.time_position.timestamp())
    return found


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """{partition: committed offset} of `group` on `topic`, as the broker holds them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracker_config(bootstrap: str, db: str, topic: str, **extra):
    """The tracker's settings for one test: its schema's URL, its topic, the group it-<topic>."""
    from tracker.settings import TrackerConfig

    return TrackerConfig.from_env(database_url=db, topic=topic, group_id=f"it-{topic}",
                                  kafka={"bootstrap_servers": bootstrap}, **extra)


def spawn_tracker(bootstrap: str, db: str, topic: str, log_path: Path, api_port: int | None = None,
                  **env_extra) -> subprocess.Popen:
    """`python -m tracker` as a process on `topic` (group it-<topic>), serving no API unless `api_port`, its JSON
    log appended to `log_path`; the test stops it (the `tracker_procs` fixture kills whatever is left)."""
    env = {**os.environ, "DATABASE_URL": db, "KAFKA_TOPIC": topic, "TRACKER_GROUP_ID": f"it-{topic}",
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_FORMAT": "json", "TRACKER_DB_RETRY_MAX_S": "2",
           **{k: str(v) for k, v in env_extra.items()}}
    if api_port is not None:
        env["TRACKER_API_PORT"] = str(api_port)
    with open(log_path, "a") as log:
        return subprocess.Popen([sys.executable, "-m", "tracker", *(["--no-api"] if api_port is None else [])],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
