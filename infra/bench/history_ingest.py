"""Section tracker: history ingest into PostgreSQL, and GET /flights with 10,000 live aircraft.

A topic is pre-filled with `aircraft` x `ticks` distinct positions (every record a new row). Then
`python -m tracker` (its real process: consumer group, COPY batches, offsets committed after the
database commit, API on a free port) drains it into a schema of its own on the stack's PostgreSQL.
The ingest rate is read from the group's committed offsets (the tracker commits only what the
database has committed) between 10% and 90% of the records, and checked against the rows in the
table. Then, with every aircraft live, GET /flights is timed over HTTP, one request after another.
"""
from __future__ import annotations

import json
import socket
import statistics
import sys
import time
import uuid
from urllib.parse import quote

import psycopg
import requests
from kafka import KafkaProducer

from infra.stack import postgres
from infra.bench.kafka_load import GroupProgress
from infra.bench.procstat import cpu_seconds
from infra.bench.session import Session

TARGETS = {
    "tracker_ingest": "tracker ingest into PostgreSQL >= 20,000 positions/s (2 cores)",
    "tracker_vs_e2e": "tracker ingest >= 3 x the end-to-end notification rate (same run)",
    "flights_p99": "GET /flights p99 <= 50 ms with 10,000 live aircraft",
}
LIMITS = {"tracker_ingest": 20_000.0, "tracker_vs_e2e": 3.0, "flights_p99": 50.0}


def _postgres_pids() -> list[int]:
    return postgres.server_pids()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _states(aircraft: int, ticks: int, t0: float):
    """Distinct (icao24, time_position) for every record: `aircraft` aircraft, one position a second."""
    for tick in range(ticks):
        for n in range(aircraft):
            yield {"icao24": f"{0x100000 + n:06x}", "callsign": f"BEN{n:05d}", "origin_country": "Testland",
                   "time_position": t0 + tick, "last_contact": t0 + tick, "longitude": -170 + (n % 340),
                   "latitude": -60 + (n // 340) * 4 % 120 + tick * 0.001, "baro_altitude": 10000.0 + n % 3000,
                   "on_ground": n % 20 == 0, "velocity": 230.0, "true_track": float(n % 360),
                   "vertical_rate": 0.0, "sensors": None, "geo_altitude": 10100.0, "squawk": "1000", "spi": False,
                   "position_source": 0, "category": 4, "source": "bench", "fetched_at": t0 + tick}


def prefill(session: Session, topic: str, aircraft: int, ticks: int) -> dict:
    started = time.monotonic()
    producer = KafkaProducer(**session.kafka.client_kwargs(), linger_ms=20, batch_size=512 * 1024,
                             compression_type=None, acks=1)
    count = 0
    try:
        for state in _states(aircraft, ticks, time.time() - ticks):
            producer.send(topic, key=state["icao24"].encode(), value=json.dumps(state).encode())
            count += 1
        producer.flush(120)
    finally:
        producer.close(30)
    seconds = time.monotonic() - started
    return {"records": count, "seconds": round(seconds, 1), "rate": round(count / seconds, 1)}


def _time_requests(url: str, n: int, server_pid: int) -> dict:
    times = []
    with requests.Session() as http:
        http.get(url, timeout=10).raise_for_status()  # warm: first encode of every aircraft's JSON
        server_cpu = cpu_seconds(server_pid)
        for _ in range(n):
            started = time.perf_counter()
            resp = http.get(url, timeout=10)
            resp.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
            size = len(resp.content)
        after = cpu_seconds(server_pid)
        server_cpu = None if server_cpu is None or after is None else after - server_cpu
    times.sort()
    # The tracker's own CPU per request (all its threads; it ingests nothing meanwhile): what the
    # answer costs the server, whatever the machine's load does to the wall-clock times.
    return {"requests": n, "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(n - 1, int(n * 0.99))], 1), "max_ms": round(times[-1], 1), "bytes": size,
            "server_cpu_ms": None if server_cpu is None else round(server_cpu / n * 1000, 2)}


def run(session: Session, aircraft: int = 10_000, ticks: int = 20, requests_n: int = 300) -> dict:
    pg = postgres.PostgresConfig.from_env()
    if postgres.ready(pg.url) is not None:
        postgres.start(pg)
    schema = f"bench_{session.run_id}_{uuid.uuid4().hex[:4]}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = f"{pg.url}{'&' if '?' in pg.url else '?'}options={quote(f'-c search_path={schema}')}"
    topic = session.topic("tracker", 6)
    total = aircraft * ticks
    try:
        session.say(f"tracker: pre-filling {topic} with {total:,} distinct positions ({aircraft:,} aircraft x {ticks})")
        filled = prefill(session, topic, aircraft, ticks)
        session.say(f"  pre-filled at {filled['rate']:,.0f} records/s")
        group = session.group("tracker")
        port = _free_port()
        progress = GroupProgress(session.kafka, group).start()
        tracker = session.spawn("tracker", [sys.executable, "-m", "tracker"], DATABASE_URL=db, KAFKA_TOPIC=topic,
                                TRACKER_GROUP_ID=group, TRACKER_API_PORT=str(port), LOG_LEVEL="INFO")
        meter = session.meter(tracker=tracker, PostgreSQL=_postgres_pids)
        try:
            deadline = time.monotonic() + 300
            next_report = time.monotonic() + 5
            while progress.committed < total and tracker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                if time.monotonic() >= next_report:
                    session.say(f"  tracker: {progress.committed:,} of {total:,} positions stored")
                    next_report += 5
            cpu = meter.stop()
            if tracker.poll() is not None:
                raise RuntimeError(f"the tracker exited ({tracker.returncode}):\n{tracker.log_tail()}")
            rate = progress.steady_rate(total)
            t0, t1 = progress.time_reaching(total * 0.1), progress.time_reaching(total * 0.9)
            steady = meter.window(t0, t1) if t0 is not None and t1 is not None else None
            with psycopg.connect(db, autocommit=True) as conn:
                rows = conn.execute("SELECT count(*) FROM positions").fetchone()[0]
            base = f"http://127.0.0.1:{port}"
            live = requests.get(f"{base}/stats", timeout=10).json()["aircraft"]
            session.say(f"  -> {rate or 0:,.0f} positions/s into PostgreSQL ({rows:,} rows); timing GET /flights "
                        f"with {live:,} live aircraft")
            flights = _time_requests(f"{base}/flights", requests_n, tracker.pid)
            bbox = _time_requests(f"{base}/flights?bbox=-10,-40,40,40&airborne=true", requests_n, tracker.pid)
            session.say(f"  -> GET /flights p50 {flights['p50_ms']} ms, p99 {flights['p99_ms']} ms "
                        f"({flights['bytes'] / 1e6:.1f} MB); with a bbox p99 {bbox['p99_ms']} ms")
        finally:
            progress.stop()
            tracker.stop(timeout=30)
        return {"records": total, "aircraft": aircraft, "rows": rows, "rate": round(rate, 1) if rate else None,
                "prefill": filled, "cpu": cpu.as_dict(), "cpu_steady": steady.as_dict() if steady else None,
                "tracker_peak_rss_mb": round(tracker.peak_rss_mb, 1), "live_aircraft": live,
                "get_flights": flights, "get_flights_bbox": bbox}
    finally:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def evaluate(results: dict, add, n) -> None:
    """Adds the tracker's targets to report.evaluate_targets' list (add(key, measured, shown, met, bound))."""
    tr = results.get("tracker")
    e2e = results.get("end_to_end")
    if not tr:
        for key in TARGETS:
            add(key, None, "not run", None)
        return
    rate = tr["rate"] or 0
    cpu = tr.get("cpu_steady") or tr["cpu"]
    cores = ", ".join(f"{k} {v / cpu['wall_s']:.2f}" for k, v in cpu["cpu_s"].items() if v)
    cores += f", other {cpu.get('other_s', 0) / cpu['wall_s']:.2f}"
    records = rate * cpu["wall_s"]
    per = {k: v / records * 1e6 for k, v in cpu["cpu_s"].items() if v and k in ("tracker", "PostgreSQL", "Kafka broker")}
    total = sum(per.values())
    bound = f"cores used: {cores}"
    if records and total:
        one_core = 1e6 / per["tracker"] if per.get("tracker") else None
        bound = (f"CPU per position: " + ", ".join(f"{k} {v:.0f} µs" for k, v in per.items()) + f" = {total:.0f} µs. "
                 f"The tracker is one Python process (one core at most, the GIL): {n(one_core)} positions/s from its "
                 f"CPU cost alone on an idle machine; in this run it got what other work left: {cores}")
    add("tracker_ingest", rate, f"{n(rate)} positions/s ({n(tr['rows'])} rows of {n(tr['records'])} records)",
        rate >= LIMITS["tracker_ingest"], bound)
    if e2e and e2e.get("max_notifications_per_s"):
        ratio = rate / e2e["max_notifications_per_s"]
        add("tracker_vs_e2e", ratio, f"{n(rate)} / {n(e2e['max_notifications_per_s'])} = {ratio:.1f}",
            ratio >= LIMITS["tracker_vs_e2e"], f"cores used by the ingest: {cores}")
    else:
        add("tracker_vs_e2e", None, "e2e section not run", None)
    f = tr["get_flights"]
    add("flights_p99", f["p99_ms"], f"{f['p99_ms']} ms (p50 {f['p50_ms']} ms, {n(tr['live_aircraft'])} aircraft, "
        f"{f['bytes'] / 1e6:.1f} MB)", f["p99_ms"] <= LIMITS["flights_p99"],
        f"the answer is a snapshot encoded once per push interval (1 s) while the picture changes; the tracker's CPU "
        f"per request: {_cpu_ms(f)} (GET /flights), {_cpu_ms(tr['get_flights_bbox'])} (with a bbox, "
        f"{tr['get_flights_bbox']['bytes'] / 1e6:.2f} MB: a filter over every aircraft); the rest of the wall-clock "
        f"time is the client reading {f['bytes'] / 1e6:.1f} MB and waiting for a core")


def _cpu_ms(timing: dict) -> str:
    return f"{timing['server_cpu_ms']} ms" if timing.get("server_cpu_ms") is not None else "n/a"


def render(tr: dict | None, n) -> list[str]:
    if not tr:
        return []
    cpu = tr.get("cpu_steady") or tr["cpu"]
    cores = ", ".join(f"{k} {v / cpu['wall_s']:.2f}" for k, v in cpu["cpu_s"].items() if v)
    cores += f", other {cpu.get('other_s', 0) / cpu['wall_s']:.2f}"
    f, b = tr["get_flights"], tr["get_flights_bbox"]
    return ["## Tracker: history ingest and GET /flights", "",
            f"`python -m tracker` drained {n(tr['records'])} distinct positions ({n(tr['aircraft'])} aircraft) from a "
            f"pre-filled 6-partition topic into PostgreSQL (binary COPY of each batch of up to 5,000, written by a thread "
            f"of its own while the next batch is decoded; offsets committed after each database commit).", "",
            "| positions/s (10%..90%, committed offsets) | rows | tracker peak RSS | CPU split |", "|---|---|---|---|",
            f"| {n(tr['rate'])} | {n(tr['rows'])} | {n(tr['tracker_peak_rss_mb'])} MB | {cores} |", "",
            f"Then, with {n(tr['live_aircraft'])} aircraft live, {f['requests']} sequential requests each:", "",
            "| request | p50 | p99 | max | response | tracker CPU per request |", "|---|---|---|---|---|---|",
            f"| GET /flights | {f['p50_ms']} ms | {f['p99_ms']} ms | {f['max_ms']} ms | {f['bytes'] / 1e6:.2f} MB | "
            f"{_cpu_ms(f)} |",
            f"| GET /flights?bbox=-10,-40,40,40&airborne=true | {b['p50_ms']} ms | {b['p99_ms']} ms | {b['max_ms']} ms | "
            f"{b['bytes'] / 1e6:.2f} MB | {_cpu_ms(b)} |", ""]
