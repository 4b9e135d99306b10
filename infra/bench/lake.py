"""Sections archive and lakequery: the lake (issue 22) measured in the same run as the tracker's ingest.

archive: a 6-partition topic is pre-filled (as the tracker section does) with `aircraft` x `ticks` distinct
positions of the producer's synthetic fleet, 10 s apart, in the producer's JSON wire format with its
content-type header. The real archiver (`python -m archiver`, default commit settings) drains it into a
fresh Iceberg table (PyIceberg's SQL catalog in the stack's PostgreSQL, data on MiniStack's S3, a throwaway
namespace purged at the end). Rate = records / (the archiver's first poll -> its last commit), from its log
and its group's committed offsets; CPU per position split by process over the same window; the rows read
back from the table are reconciled against the records loaded. The same positions then give bytes per
position: Parquet in the lake (data files' sizes / rows, from the table's files metadata) vs JSON vs
Protobuf (pipeline_common.state_codec, as the producer encodes them).

lakequery: `rows` synthetic positions of one UTC day (numpy + pyarrow: `aircraft` aircraft of ~120 origin
countries with a skewed share, one position every 5 to 10 s while airborne) appended in a few large commits,
then "distinct aircraft per country per hour" (lake_spark.DAY_QUERY) with DuckDB (lakehouse.duck, in this
process) and with Spark (infra.lake.spark in a process of its own: infra.bench.lake_spark), wall and CPU
seconds each, Spark's session start apart from its query, and both answers compared row by row.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from kafka import KafkaProducer

from infra.bench.kafka_load import GroupProgress
from infra.bench.lake_spark import DAY_QUERY, answer_rows
from infra.bench.procstat import CpuMeter
from infra.bench.session import Session, json_log
from infra.stack import postgres
from infra.stack.processes import with_children

logger = logging.getLogger(__name__)

TARGETS = {
    "archive_rate": "archiver >= 2,000 positions/s into Iceberg (the planet at OpenSky's 5 s resolution; 2 cores)",
    "archive_reconciled": "rows read back from the Iceberg table == distinct positions loaded into Kafka (archive)",
    "lake_answers_equal": "DuckDB and Spark give the same day-scale answer, row by row",
}
LIMITS = {"archive_rate": 2_000.0}

ARCHIVE_CADENCE_S = 10  # the producer's default interval: each tick is a new position of every aircraft
DAY_COUNTRIES = 120


def _pg() -> postgres.PostgresConfig:
    pg = postgres.PostgresConfig.from_env()
    if postgres.ready(pg.url) is not None:
        postgres.start(pg)
    return pg


def _harness_cpu() -> float:
    """CPU seconds of this process (every thread: DuckDB's, PyIceberg's writers)."""
    return time.process_time()


@contextmanager
def throwaway_lake(session: Session, what: str, database_url: str):
    """(settings, catalog) of a namespace of this run on the stack's catalog and S3; every table in it is
    purged (its files too) and the namespace dropped at the end, pass or fail."""
    from infra.lake.create import ensure_bucket
    from lakehouse.settings import LakeSettings

    settings = LakeSettings.from_env(os.environ, namespace=f"bench_{session.run_id}_{what}",
                                     database_url=database_url)
    ensure_bucket(settings)
    catalog = bench_catalog(settings)
    try:
        yield settings, catalog
    finally:
        purge_namespace(catalog, settings.namespace)


def bench_catalog(settings):
    """The lake's catalog as lakehouse.catalog.load_catalog opens it, with a longer S3 request timeout for
    the harness's own writes, reads and purges. PyArrow's S3 client gives up on a request that moves less
    than a byte in 3 s (its default request_timeout), which MiniStack on a loaded machine does now and then
    while it stores a part (measured: UploadPart and HeadObject "Operation too slow")."""
    from pyiceberg.catalog.sql import SqlCatalog
    return SqlCatalog(settings.catalog_name, **{**settings.catalog_properties(), **BENCH_S3_TIMEOUTS})  # see below


# Longer than LAKE_S3_REQUEST_TIMEOUT_S's default: the 10-million-row appends store ~90 MB files.
BENCH_S3_TIMEOUTS = {"s3.request-timeout": "120", "s3.connect-timeout": "30"}


def purge_namespace(catalog, namespace: str, tries: int = 3) -> None:
    """Every table of the namespace purged (files too), then the namespace dropped; retried a few times
    (S3 on a loaded endpoint), then left with a warning that names it."""
    from pyiceberg.exceptions import NoSuchNamespaceError
    for attempt in range(1, tries + 1):
        try:
            for identifier in catalog.list_tables(namespace):
                catalog.purge_table(identifier)
            catalog.drop_namespace(namespace)
            return
        except NoSuchNamespaceError:
            return
        except Exception as exc:  # noqa: BLE001 - the bench's result stands; the leftover is named
            if attempt == tries:
                logger.warning("could not purge lake namespace %s (%s); drop it by hand", namespace, exc)
            else:
                time.sleep(2.0 * attempt)


# ============================================================== archive
def fleet_states(aircraft: int, ticks: int, cadence_s: int = ARCHIVE_CADENCE_S) -> list[dict]:
    """`aircraft` x `ticks` states of the producer's synthetic fleet, `cadence_s` apart, ending now: every
    (icao24, time_position) distinct (time_position is whole seconds)."""
    from producer.synthetic import SyntheticFleet

    t0 = time.time() - ticks * cadence_s
    fleet = SyntheticFleet(aircraft, 22, t0)
    return [state for tick in range(ticks) for state in fleet.tick(t0 + tick * cadence_s)]


def prefill(session: Session, topic: str, values: list[tuple[bytes, bytes]], content_type: str) -> dict:
    """The records into `topic` with the tracker section's producer settings (acks=1, no compression), each
    with the producer's headers (state_codec.record_headers: a content-type for Protobuf, none for JSON)."""
    from pipeline_common.state_codec import record_headers

    headers = record_headers(content_type) or None
    started = time.monotonic()
    producer = KafkaProducer(**session.kafka.client_kwargs(), linger_ms=20, batch_size=512 * 1024,
                             compression_type=None, acks=1)
    try:
        for key, value in values:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush(120)
    finally:
        producer.close(30)
    seconds = time.monotonic() - started
    return {"records": len(values), "seconds": round(seconds, 1), "rate": round(len(values) / seconds, 1)}


def _log_monotonic(entry: dict) -> float:
    """A JSON log line's `ts` (wall clock, ms) as this machine's time.monotonic()."""
    wall = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    return time.monotonic() - (time.time() - wall)


def _archiver_log(child) -> tuple[float | None, int, int]:
    """(when it began polling, records consumed, records pending a commit) from the archiver's log (its
    latest status line)."""
    began, consumed, pending = None, 0, 0
    for entry in json_log(child.log_path):
        msg = entry.get("msg", "")
        if began is None and msg.startswith("archiving "):
            began = _log_monotonic(entry)
        elif msg.startswith("status:") and isinstance(entry.get("consumed"), int):
            consumed, pending = entry["consumed"], entry.get("pending") or 0
    return began, consumed, pending


def data_files(table) -> dict:
    """Data files of the table's current snapshot (its files metadata): count, rows, bytes."""
    files = table.inspect.files()
    data = files.filter(pc.equal(files.column("content"), 0))
    return {"files": data.num_rows, "rows": int(pc.sum(data.column("record_count")).as_py() or 0),
            "bytes": int(pc.sum(data.column("file_size_in_bytes")).as_py() or 0)}


def run_archive(session: Session, aircraft: int = 10_000, ticks: int = 20, timeout_s: float = 600) -> dict:
    from lakehouse.settings import LakeSettings
    from pipeline_common.state_codec import JSON, PROTOBUF, encode_state

    pg = _pg()
    states = fleet_states(aircraft, ticks)
    total = len(states)
    values = [(s["icao24"].encode(), encode_state(s, JSON)) for s in states]
    wire = {"json": sum(len(v) for _k, v in values) / total,
            "protobuf": sum(len(encode_state(s, PROTOBUF)) for s in states) / total}
    del states
    topic = session.topic("archive", 6)
    session.say(f"archive: pre-filling {topic} with {total:,} distinct positions ({aircraft:,} aircraft x {ticks}, "
                f"{ARCHIVE_CADENCE_S} s apart, JSON {wire['json']:.0f} bytes each)")
    # MiniStack serves every client of the stack: its CPU while this section does not use it (the pre-fill)
    # says how much of its share in the archiver's window is someone else's.
    baseline = CpuMeter({"MiniStack": session.stack_pids()["MiniStack"]}).start()
    filled = prefill(session, topic, values, JSON)
    idle = baseline.stop()
    filled["ministack_cores"] = round(idle.share("MiniStack"), 3)
    del values
    session.say(f"  pre-filled at {filled['rate']:,.0f} records/s")
    defaults = LakeSettings.from_env(os.environ)  # what the archiver child reads (it inherits the environment)
    with throwaway_lake(session, "archive", pg.url) as (settings, catalog):
        group = session.group("archive")
        progress = GroupProgress(session.kafka, group).start()
        archiver = session.spawn("archiver", [sys.executable, "-m", "archiver"], KAFKA_TOPIC=topic,
                                 DATABASE_URL=pg.url, LAKE_NAMESPACE=settings.namespace, LAKE_GROUP_ID=group,
                                 ARCHIVER_STATUS_INTERVAL_S="1")
        meter = session.meter(archiver=archiver, PostgreSQL=postgres.server_pids)
        forced = False
        try:
            deadline, next_report, next_look = time.monotonic() + timeout_s, time.monotonic() + 5, 0.0
            while progress.committed < total and archiver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                if time.monotonic() < next_look:
                    continue
                next_look = time.monotonic() + 1.0  # as often as it logs its status (parsing costs the harness)
                began, consumed, pending = _archiver_log(archiver)
                if consumed >= total and pending and not forced:
                    # Everything read but less than a full commit pending: the archiver would wait out its
                    # commit interval (LAKE_COMMIT_INTERVAL_S); SIGTERM commits the buffer at once instead.
                    archiver.signal(signal.SIGTERM)
                    forced = True
                if time.monotonic() >= next_report:
                    session.say(f"  archiver: {progress.committed:,} of {total:,} positions committed")
                    next_report += 5
            time.sleep(0.6)  # one more meter sample past the last commit
            cpu = meter.stop()
            began, _, _ = _archiver_log(archiver)
            ended = progress.time_reaching(total)
            if ended is None or began is None:
                raise RuntimeError(f"the archiver did not commit all {total:,} records (committed "
                                   f"{progress.committed:,}; exit {archiver.returncode}):\n{archiver.log_tail()}")
            window = meter.window(began, ended + 0.6) or cpu
        finally:
            progress.stop()
            archiver.stop(timeout=60)
        failures = [e["msg"] for e in json_log(archiver.log_path) if e.get("msg", "").startswith("commit failed")]
        table = catalog.load_table(settings.identifier)
        keys = table.scan(selected_fields=("icao24", "time_position")).to_arrow()
        rows = keys.num_rows
        distinct = keys.group_by(["icao24", "time_position"]).aggregate([]).num_rows
        files = data_files(table)
        commits = len(table.snapshots())
    seconds = ended - began
    rate = total / seconds if seconds > 0 else None
    session.say(f"  -> {rate or 0:,.0f} positions/s into Iceberg ({rows:,} rows read back, {commits} commits); "
                f"Parquet {files['bytes'] / max(1, files['rows']):.1f} bytes per position, JSON {wire['json']:.0f}, "
                f"Protobuf {wire['protobuf']:.0f}")
    return {"records": total, "aircraft": aircraft, "ticks": ticks, "rows": rows, "distinct_rows": distinct,
            "rate": round(rate, 1) if rate else None, "seconds": round(seconds, 2), "commits": commits,
            "forced_last_commit": forced, "failed_commit_tries": len(failures),
            "first_failure": failures[0][:300] if failures else None, "commit_rows": defaults.commit_rows,
            "commit_interval_s": defaults.commit_interval_s, "prefill": filled, "cpu": cpu.as_dict(),
            "cpu_steady": window.as_dict(), "archiver_peak_rss_mb": round(archiver.peak_rss_mb, 1),
            "bytes": {"json": round(wire["json"], 1), "protobuf": round(wire["protobuf"], 1),
                      "parquet": round(files["bytes"] / files["rows"], 1) if files["rows"] else None,
                      "parquet_files": files["files"], "parquet_rows": files["rows"],
                      "parquet_total": files["bytes"]}}


# ============================================================== lakequery
def _country_names(count: int) -> list[str]:
    """The producer's countries (the busiest first), then made-up ones up to `count`."""
    from producer.synthetic import COUNTRIES
    names = [c[0] for c in sorted(COUNTRIES, key=lambda c: -c[4])][:count]
    return names + [f"Country {i:03d}" for i in range(len(names) + 1, count + 1)]


def day_positions(rows: int, aircraft: int, day: date, chunks: int = 4, seed: int = 22):
    """`rows` positions of one UTC day as Arrow tables (about `chunks` of them, each sorted by icao24,
    time_position as the archiver writes): `aircraft` aircraft, each of an origin country drawn from a
    Zipf-like share of DAY_COUNTRIES (a few countries fly most), reporting every 5 to 10 s over one
    stretch of the day, flying a straight track at its own speed and level."""
    from lakehouse.catalog import POSITIONS_ARROW

    rng = np.random.default_rng(seed)
    aircraft = max(1, min(aircraft, rows))
    base = rows / aircraft
    cadence = rng.integers(5, 11, aircraft)
    if base * 1.5 * 10 > 86_400 - 60:
        raise ValueError(f"{rows:,} positions of {aircraft:,} aircraft at 5-10 s do not fit in one day")
    share = rng.uniform(0.5, 1.5, aircraft)
    counts = np.floor(share * rows / share.sum()).astype(np.int64)
    counts[: rows - counts.sum()] += 1  # the rounding's remainder, one each
    start = np.floor(rng.uniform(0, 1, aircraft) * (86_400 - counts * cadence)).astype(np.int64)
    weights = 1.0 / np.arange(1, DAY_COUNTRIES + 1) ** 1.1
    country = rng.choice(DAY_COUNTRIES, size=aircraft, p=weights / weights.sum())
    countries = pa.array(_country_names(DAY_COUNTRIES))
    icao = pa.array([f"{v:06x}" for v in np.sort(rng.choice(0xFFFFFF, aircraft, replace=False) + 1)])
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    prefixes = ["".join(rng.choice(letters, 3)) for _ in range(DAY_COUNTRIES)]
    callsign = pa.array([f"{prefixes[c]}{rng.integers(1, 9999)}" for c in country])
    squawk = pa.array([f"{v:04o}" for v in rng.integers(0, 0o7777, aircraft)])
    lat0, lon0 = rng.uniform(-60, 70, aircraft), rng.uniform(-180, 180, aircraft)
    track = rng.uniform(0, 360, aircraft)
    speed = rng.uniform(120, 260, aircraft)  # m/s
    level = rng.choice(np.arange(25_000, 41_000, 1_000), aircraft) * 0.3048
    category = rng.integers(1, 8, aircraft)
    day0 = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    ingested = pa.scalar(datetime.now(timezone.utc), pa.timestamp("us", tz="UTC"))
    offset = 0
    for part in np.array_split(np.arange(aircraft), min(chunks, aircraft)):
        idx = np.repeat(part, counts[part])
        n = len(idx)
        firsts = np.repeat(np.cumsum(counts[part]) - counts[part], counts[part])
        k = np.arange(n) - firsts  # the position's number within its aircraft's stretch
        last = k == counts[idx] - 1
        seconds = day0 + start[idx] + k * cadence[idx]
        when = seconds * 1_000_000
        dist = k * cadence[idx] * speed[idx] / 111_000.0  # degrees of arc flown
        rad = np.radians(track[idx])
        lat = np.clip(lat0[idx] + dist * np.cos(rad), -85, 85).round(5)
        lon = (((lon0[idx] + dist * np.sin(rad) + 180) % 360) - 180).round(5)
        ground = (k < 2) | last
        baro = (level[idx] + rng.normal(0, 8, n)).astype(np.float32)
        ts = pa.timestamp("us", tz="UTC")
        take = pa.array(idx)
        cols = {
            "icao24": icao.take(take), "time_position": pa.array(when, ts),
            "last_contact": pa.array(when + rng.integers(0, 2, n) * 1_000_000, ts),
            "callsign": callsign.take(take), "origin_country": countries.take(pa.array(country[idx])),
            "longitude": pa.array(lon), "latitude": pa.array(lat),
            "baro_altitude": pa.array(baro, mask=ground), "geo_altitude": pa.array(baro * np.float32(1.02), mask=ground),
            "on_ground": pa.array(ground), "velocity": pa.array((speed[idx] + rng.normal(0, 2, n)).astype(np.float32)),
            "true_track": pa.array(track[idx].astype(np.float32)),
            "vertical_rate": pa.array(rng.normal(0, 1, n).round(1).astype(np.float32), mask=ground),
            "squawk": squawk.take(take), "category": pa.array(category[idx].astype(np.int32)),
            "position_source": pa.array(np.zeros(n, np.int32)), "source": pa.array(["synthetic"]).take(pa.array(np.zeros(n, np.int32))),
            "kafka_partition": pa.array((idx % 6).astype(np.int32)),
            "kafka_offset": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
            "ingested_at": pa.array(np.full(n, ingested.value), ts),
        }
        offset += n
        yield pa.Table.from_arrays([cols[f.name] for f in POSITIONS_ARROW], schema=POSITIONS_ARROW)


def duckdb_answer(con) -> list[list]:
    return answer_rows(con.execute(DAY_QUERY).fetchall())


def _groups(session: Session, **extra) -> dict:
    groups = {"MiniStack": session.stack_pids()["MiniStack"], "PostgreSQL": postgres.server_pids,
              "bench harness": lambda: [os.getpid()]}
    groups.update(extra)
    return groups


def _step(meter, t0: float, t1: float, cpu_s: float, **more) -> dict:
    """Wall and CPU seconds of one step, with the stack's CPU and the rest of the machine's over it (from
    the meter's samples): whether the step had the cores or waited for them."""
    split = meter.window(t0, t1)
    d = split.as_dict() if split else {"cpu_s": {}, "machine_busy_s": None, "wall_s": None}
    return {"wall_s": round(t1 - t0, 2), "cpu_s": round(cpu_s, 2),
            "stack_cpu_s": {k: v for k, v in d["cpu_s"].items() if k in ("MiniStack", "PostgreSQL")},
            "machine_busy_cores": d.get("machine_busy_cores"), **more}


def run_query(session: Session, rows: int = 10_000_000, aircraft: int = 10_000, appends: int = 4,
              day: date | None = None) -> dict:
    from lakehouse import duck
    from lakehouse.catalog import ensure_table

    pg = _pg()
    day = day or (datetime.now(timezone.utc) - timedelta(days=2)).date()
    out: dict = {"rows": rows, "aircraft": aircraft, "appends": appends, "day": day.isoformat(),
                 "countries": DAY_COUNTRIES, "query": DAY_QUERY}
    with throwaway_lake(session, "day", pg.url) as (settings, catalog):
        table = ensure_table(catalog, settings)
        session.say(f"lakequery: {rows:,} positions of {day} ({aircraft:,} aircraft, {DAY_COUNTRIES} countries) "
                    f"into {settings.namespace}.{settings.table} in {appends} appends")
        meter = CpuMeter(_groups(session)).start()
        gen_s = write_s = gen_cpu = write_cpu = 0.0
        t_write0 = time.monotonic()
        chunks = day_positions(rows, aircraft, day, appends)
        while True:
            t0, c0 = time.monotonic(), _harness_cpu()
            chunk = next(chunks, None)
            t1, c1 = time.monotonic(), _harness_cpu()
            gen_s, gen_cpu = gen_s + t1 - t0, gen_cpu + c1 - c0
            if chunk is None:
                break
            table.append(chunk)
            t2 = time.monotonic()
            write_s, write_cpu = write_s + t2 - t1, write_cpu + _harness_cpu() - c1
            session.say(f"  appended {chunk.num_rows:,} rows in {t2 - t1:.1f} s")
            del chunk
        t_write1 = time.monotonic()
        table = catalog.load_table(settings.identifier)
        files = data_files(table)
        out["generate"] = {"wall_s": round(gen_s, 2), "cpu_s": round(gen_cpu, 2)}
        out["write"] = _step(meter, t_write0, t_write1, write_cpu, files=files)
        out["write"]["wall_s"] = round(write_s, 2)

        session.say("  DuckDB: connecting (extensions, S3 secret, views), then the query")
        t0, c0 = time.monotonic(), _harness_cpu()
        con = duck.connect(settings, catalog=catalog)
        t1, c1 = time.monotonic(), _harness_cpu()
        duck_rows = duckdb_answer(con)
        t2, c2 = time.monotonic(), _harness_cpu()
        con.close()
        time.sleep(0.6)
        out["duckdb"] = {"connect": _step(meter, t0, t1, c1 - c0), "query": _step(meter, t1, t2 + 0.6, c2 - c1),
                         "answer_rows": len(duck_rows)}
        out["duckdb"]["query"]["wall_s"] = round(t2 - t1, 2)
        session.say(f"  -> DuckDB: query {t2 - t1:.1f} s wall, {c2 - c1:.1f} s CPU; {len(duck_rows):,} rows")
        meter.stop()

        session.say("  Spark: session start (JVM), then the query, in a process of its own")
        answer = session.log_dir / "lake_spark_answer.json"
        answer.parent.mkdir(parents=True, exist_ok=True)
        spark = session.spawn("lake-spark", [sys.executable, "-m", "infra.bench.lake_spark", "--out", str(answer)],
                              DATABASE_URL=pg.url, LAKE_NAMESPACE=settings.namespace)
        meter = CpuMeter(_groups(session, Spark=lambda: with_children(spark.pid) if spark.alive() else [])).start()
        try:
            if spark.wait(1800) != 0:
                raise RuntimeError(f"the Spark query failed (exit {spark.returncode}):\n{spark.log_tail(30)}")
        finally:
            meter.stop()
            spark.stop(timeout=30)
        result = json.loads(answer.read_text())
        s, q = result["session"], result["query"]
        out["spark"] = {"session": _step(meter, s["t0"], s["t1"], s["cpu_s"]),
                        "query": _step(meter, q["t0"], q["t1"], q["cpu_s"]),
                        "answer_rows": len(result["rows"])}
        out["spark"]["session"]["wall_s"], out["spark"]["query"]["wall_s"] = s["wall_s"], q["wall_s"]
        session.say(f"  -> Spark: session {s['wall_s']:.1f} s, query {q['wall_s']:.1f} s wall, {q['cpu_s']:.1f} s "
                    f"CPU; {len(result['rows']):,} rows")
    spark_rows = sorted(result["rows"])
    duck_rows = sorted(duck_rows)
    differ = [[a, b] for a, b in zip(duck_rows, spark_rows) if a != b]
    out["answers_equal"] = len(duck_rows) == len(spark_rows) and not differ
    out["first_differences"] = differ[:5]
    out["total_aircraft_hours"] = sum(r[3] for r in duck_rows)
    out["countries_seen"] = len({r[0] for r in duck_rows})
    out["load_average"] = os.getloadavg()[0]
    return out


# ============================================================== report
def _per_position_us(cpu: dict | None, items: int | None, names: tuple[str, ...]) -> dict[str, float]:
    if not cpu or not items:
        return {}
    return {k: cpu["cpu_s"][k] / items * 1e6 for k in names if cpu["cpu_s"].get(k)}


ARCHIVE_PROCESSES = ("archiver", "MiniStack", "PostgreSQL", "Kafka broker")
TRACKER_PROCESSES = ("tracker", "PostgreSQL", "Kafka broker")


def _archive_per(ar: dict) -> dict[str, float]:
    cpu = ar.get("cpu_steady") or ar["cpu"]
    return _per_position_us(cpu, ar["records"], ARCHIVE_PROCESSES)


def _tracker_per(tr: dict) -> dict[str, float]:
    cpu = tr.get("cpu_steady") or tr["cpu"]
    items = (tr.get("rate") or 0) * cpu["wall_s"]  # positions stored over the CPU window (history_ingest's way)
    return _per_position_us(cpu, items, TRACKER_PROCESSES)


def _cores(cpu: dict) -> str:
    wall = cpu["wall_s"] or 1
    parts = [f"{k} {v / wall:.2f}" for k, v in cpu["cpu_s"].items() if v / wall >= 0.005]
    return ", ".join(parts + [f"other {cpu.get('other_s', 0) / wall:.2f}"])


def _us(per: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f} µs" for k, v in per.items()) + f" = {sum(per.values()):,.0f} µs"


def evaluate(results: dict, add, n) -> None:
    """The lake's targets into report.evaluate_targets' list (add(key, measured, shown, met, bound))."""
    ar, lq = results.get("archive"), results.get("lakequery")
    if ar:
        rate = ar["rate"] or 0
        per = _archive_per(ar)
        cpu = ar.get("cpu_steady") or ar["cpu"]
        one_core = 1e6 / per["archiver"] if per.get("archiver") else None
        bound = (f"CPU per position: {_us(per)}: {n(2e6 / sum(per.values()))} positions/s on 2 cores with no idle "
                 f"moment and nothing else running. The archiver is one Python process (the GIL: one core at most): "
                 f"{n(one_core)} positions/s from its own CPU cost; MiniStack (S3: the Parquet uploads) is one "
                 f"Python process too. In this run they got what other work left: {_cores(cpu)}"
                 + (f"; MiniStack used {ar['prefill']['ministack_cores']:.2f} cores for other clients while this "
                    "section did not use it" if ar["prefill"].get("ministack_cores") is not None else "")
                 + (f"; {ar['failed_commit_tries']} commit tries failed (S3 or the catalog) and were retried inside "
                    "the measured time" if ar.get("failed_commit_tries") else "")) if per else ""
        add("archive_rate", rate, f"{n(rate)} positions/s ({n(ar['records'])} records, {ar['commits']} commits)",
            rate >= LIMITS["archive_rate"], bound)
        ok = ar["rows"] == ar["records"] == ar["distinct_rows"]
        add("archive_reconciled", ar["rows"], f"{n(ar['rows'])} rows ({n(ar['distinct_rows'])} distinct keys) of "
            f"{n(ar['records'])} records", ok, "" if ok else "rows lost or doubled: see the archiver's log")
    else:
        add("archive_rate", None, "not run", None)
        add("archive_reconciled", None, "not run", None)
    if lq:
        add("lake_answers_equal", lq["answers_equal"], f"{n(lq['duckdb']['answer_rows'])} rows from DuckDB, "
            f"{n(lq['spark']['answer_rows'])} from Spark, {'equal' if lq['answers_equal'] else 'DIFFERENT'} "
            f"({n(lq['rows'])} positions)", lq["answers_equal"],
            "" if lq["answers_equal"] else f"first differences (DuckDB, Spark): {lq['first_differences']}")
    else:
        add("lake_answers_equal", None, "not run", None)


def render(ar: dict | None, lq: dict | None, tr: dict | None, n) -> list[str]:
    return _render_archive(ar, tr, n) + _render_query(lq, n)


def _render_archive(ar: dict | None, tr: dict | None, n) -> list[str]:
    if not ar:
        return []
    cpu = ar.get("cpu_steady") or ar["cpu"]
    per = _archive_per(ar)
    cmd = (f"`.venv/bin/python -m infra.bench.run --sections tracker,archive --tracker-aircraft {ar['aircraft']} "
           f"--tracker-ticks {ar['ticks']} --archive-aircraft {ar['aircraft']} --archive-ticks {ar['ticks']}`")
    lines = ["## Lake: archive throughput (Kafka -> archiver -> Iceberg on S3)", "",
             f"`python -m archiver` (its default commits: {n(ar['commit_rows'])} records or "
             f"{ar['commit_interval_s']:g} s) drained {n(ar['records'])} distinct positions ({n(ar['aircraft'])} "
             f"aircraft of the producer's synthetic fleet x {ar['ticks']}, {ARCHIVE_CADENCE_S} s apart, the "
             "producer's JSON) from a pre-filled 6-partition topic into a fresh Iceberg table: PyIceberg's SQL "
             "catalog in the stack's PostgreSQL, Parquet on MiniStack's S3. Rate = records / (its first poll -> its "
             "last commit); rows are read back from the table (the store, not the archiver's counter)."
             + (" The last partial commit was triggered by SIGTERM once everything was read (the archiver commits "
                "its buffer on stop) instead of waiting out the commit interval." if ar.get("forced_last_commit") else "")
             + (f" {ar['failed_commit_tries']} commit tries failed and were retried, inside the measured time "
                f"(first: `{ar['first_failure']}`)." if ar.get("failed_commit_tries") else ""),
             "", f"Reproduce: {cmd}", "",
             "| path | positions/s | CPU per position | rows stored (read back) | peak RSS | CPU split |",
             "|---|---|---|---|---|---|",
             f"| archiver -> Iceberg | **{n(ar['rate'])}** | {_us(per) if per else 'n/a'} | {n(ar['rows'])} of "
             f"{n(ar['records'])} in {ar['commits']} commits | {n(ar['archiver_peak_rss_mb'])} MB | {_cores(cpu)} |"]
    if tr and tr.get("rate"):
        tper = _tracker_per(tr)
        tcpu = tr.get("cpu_steady") or tr["cpu"]
        lines.append(f"| tracker -> PostgreSQL (same run) | {n(tr['rate'])} | {_us(tper) if tper else 'n/a'} | "
                     f"{n(tr['rows'])} of {n(tr['records'])} | {n(tr.get('tracker_peak_rss_mb'))} MB | {_cores(tcpu)} |")
        ratio = (ar["rate"] or 0) / tr["rate"]
        cpu_ratio = sum(per.values()) / sum(tper.values()) if per and tper else None
        lines += ["", f"Archive / tracker in this run: **{ratio:.2f}** x the positions/s"
                  + (f", {cpu_ratio:.2f} x the CPU per position" if cpu_ratio else "") + "."]
    else:
        lines += ["", "The tracker section did not run in this run: no archive / tracker ratio."]
    b = ar["bytes"]
    lines += ["", "## Lake: bytes per position", "",
              f"The same {n(ar['records'])} positions three ways (Parquet: the sum of the table's data files' sizes "
              "from its files metadata / rows; zstd, sorted by icao24, time_position; JSON and Protobuf: "
              "pipeline_common.state_codec, as the producer encodes each record's value).", "",
              f"Reproduce: {cmd}", "",
              "| format | bytes per position | vs JSON |", "|---|---|---|",
              f"| JSON (the producer's wire format) | {b['json']:.1f} | 1.00 |",
              f"| Protobuf (PRODUCER_FORMAT=protobuf) | {b['protobuf']:.1f} | {b['protobuf'] / b['json']:.2f} |"]
    if b.get("parquet"):
        lines.append(f"| Parquet in the lake ({b['parquet_files']} data files, {n(b['parquet_rows'])} rows, "
                     f"{b['parquet_total'] / 1e6:.1f} MB) | {b['parquet']:.1f} | {b['parquet'] / b['json']:.2f} |")
    return lines + [""]


def _render_query(lq: dict | None, n) -> list[str]:
    if not lq:
        return []
    d, s = lq["duckdb"], lq["spark"]
    w = lq["write"]
    files = w["files"]

    def stack(step: dict) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in step.get("stack_cpu_s", {}).items()) or "n/a"

    def row(what: str, step: dict, per_position: bool = True) -> str:
        cores = step["cpu_s"] / step["wall_s"] if step["wall_s"] else 0
        per = f"{step['cpu_s'] / lq['rows'] * 1e6:.2f}" if per_position else "-"
        return f"| {what} | {step['wall_s']:.1f} | {step['cpu_s']:.1f} | {cores:.2f} | {per} | {stack(step)} |"

    cmd = f"`.venv/bin/python -m infra.bench.run --sections lakequery --lake-rows {lq['rows']} " \
          f"--lake-aircraft {lq['aircraft']} --lake-appends {lq['appends']}`"
    lines = ["## Lake: a day-scale query (distinct aircraft per country per hour)", "",
             f"{n(lq['rows'])} synthetic positions of {lq['day']} (UTC): {n(lq['aircraft'])} aircraft of "
             f"{lq['countries']} origin countries (a Zipf-like share: the busiest country flies about a fifth), "
             "one position every 5 to 10 s over a stretch of the day each, generated with numpy and appended to a "
             f"fresh positions table in {lq['appends']} commits ({files['files']} data files, "
             f"{files['bytes'] / 1e6:.0f} MB, {files['bytes'] / max(1, files['rows']):.1f} bytes per position). "
             f"The same SQL in both engines: `{lq['query']}`. DuckDB runs in the harness's process "
             "(lakehouse.duck: views on the catalog's current metadata); Spark (infra.lake.spark: local mode, "
             "Iceberg's JDBC catalog on the same PostgreSQL rows) in a process of its own, its CPU including its JVM.",
             "", f"Reproduce: {cmd}", "",
             "| step | wall s | CPU s | cores | CPU µs per position | stack CPU meanwhile |", "|---|---|---|---|---|---|",
             row("generate (numpy/pyarrow)", lq["generate"] | {"stack_cpu_s": {}}),
             row(f"write: {lq['appends']} PyIceberg appends", w),
             row("DuckDB: connect (extensions, S3 secret, views)", d["connect"], False),
             row("**DuckDB: the query**", d["query"]),
             row("Spark: session start (JVM, jars, catalog)", s["session"], False),
             row("**Spark: the query** (first in its JVM)", s["query"]), "",
             f"Answers: DuckDB {n(d['answer_rows'])} rows, Spark {n(s['answer_rows'])} rows, "
             f"**{'equal row by row' if lq['answers_equal'] else 'DIFFERENT'}** ({lq['countries_seen']} countries; "
             f"{n(lq['total_aircraft_hours'])} aircraft-hours). Spark / DuckDB query wall time: "
             f"{s['query']['wall_s'] / max(d['query']['wall_s'], 1e-9):.1f} x, CPU: "
             f"{s['query']['cpu_s'] / max(d['query']['cpu_s'], 1e-9):.1f} x; load average at the end "
             f"{lq['load_average']:.1f}.", ""]
    lines += [f"What bounds them (this run): {_query_bound(lq)}", ""]
    return lines


def _query_bound(lq: dict) -> str:
    """Cores each query used, how much of the stack's CPU (S3 reads from MiniStack) went with it, and how
    busy the whole machine was meanwhile (2 cores: 2.00 = no idle moment)."""
    out = []
    for name, step in (("DuckDB", lq["duckdb"]["query"]), ("Spark", lq["spark"]["query"])):
        if not step["wall_s"]:
            continue
        cores = step["cpu_s"] / step["wall_s"]
        ministack = step.get("stack_cpu_s", {}).get("MiniStack", 0.0) / step["wall_s"]
        busy = step.get("machine_busy_cores")
        text = f"{name}'s query used {cores:.2f} cores, MiniStack serving its S3 reads {ministack:.2f} more"
        if busy is not None:
            others = max(0.0, busy - cores - ministack)
            text += (f", the rest of the machine {others:.2f} (machine busy {busy:.2f} of 2 cores: "
                     + ("no idle core: the query got what other work left" if busy >= 1.8 and others >= 0.3 else
                        "CPU-bound" if busy >= 1.8 else "not CPU-bound: waiting on I/O or on one thread") + ")")
        out.append(text)
    w = lq["write"]
    ministack = w.get("stack_cpu_s", {}).get("MiniStack")
    if ministack is not None and w["files"]["bytes"]:
        out.append(f"writing the day: PyIceberg (Arrow -> Parquet, zstd) {w['cpu_s']:.1f} s of CPU, MiniStack storing "
                   f"the {w['files']['bytes'] / 1e6:.0f} MB {ministack:.1f} s ({ministack / w['files']['bytes'] * 1e8:.1f} s "
                   f"per 100 MB), the machine {w.get('machine_busy_cores') or 0:.2f} cores busy")
    return "; ".join(out) + "."
