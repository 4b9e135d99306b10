"""Kafka record -> browser update latency: the synthetic producer at a fixed rate into a topic of its own,
`python -m tracker` on it (PostgreSQL history in a schema of its own), and the live map open in Debian's
headless Chromium noting when each position reaches the page. Latency = the page's receive time minus the
record's Kafka timestamp (CreateTime, set by the producer), both from this machine's clock.

Also measured there: how long one canvas redraw of every aircraft takes once the page holds the whole fleet.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from urllib.parse import quote

from infra.web import map_assets

from infra.stack import postgres
from infra.demo.observe import read_topic
from pipeline_common.state_codec import content_type_of, decode_state

# Installed before the page's own scripts, so no update is missed: the first time each
# (icao24, position time) reaches the page, and when.
_COLLECTOR = """
window.__seen = new Map();
window.__drawn = new Map();
let undrawn = [];
window.addEventListener("tracker:update", (e) => {
  for (const f of e.detail.flights) {
    const key = f.icao24 + "|" + Date.parse(f.time_position);
    if (!window.__seen.has(key)) {
      window.__seen.set(key, [e.detail.receivedAt, Date.parse(e.detail.sentAt)]);
      undrawn.push(key);
    }
  }
});
// The first canvas redraw after an update shows it on the map.
window.addEventListener("tracker:drawn", (e) => {
  for (const key of undrawn) window.__drawn.set(key, e.detail.at);
  undrawn = [];
});
"""

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _database(session) -> tuple[str, str, bool]:
    """(admin URL, URL whose search_path is a schema of this run, whether this run started the server)."""
    cfg = postgres.PostgresConfig.from_env()
    started = False
    if not cfg.external and postgres.ready(cfg.url) is not None:
        session.say("  starting the native PostgreSQL for the tracker")
        postgres.start(cfg)
        started = True
    schema = f"bench_{session.run_id}"
    import psycopg
    with psycopg.connect(cfg.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    sep = "&" if "?" in cfg.url else "?"
    return cfg.url, f"{cfg.url}{sep}options={quote(f'-c search_path={schema}')}", started


def _drop_schema(admin_url: str, run_id: str) -> None:
    import psycopg
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "bench_{run_id}" CASCADE')


def run(session, rate: int = 1000, seconds: float = 20, aircraft: int = 10_000) -> dict:
    from playwright.sync_api import sync_playwright

    missing = map_assets.browser_missing()
    if missing:
        raise RuntimeError(f"headless Chromium is missing ({', '.join(missing)}); run `make setup`")
    session.say(f"map: Kafka -> tracker -> browser latency at {rate} positions/s, {aircraft} aircraft, {seconds:.0f} s")
    admin_url, db_url, started_pg = _database(session)
    topic = session.topic("map", 6)
    group = session.group("map-tracker")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    tracker = session.spawn("tracker", [sys.executable, "-m", "tracker"], KAFKA_TOPIC=topic, DATABASE_URL=db_url,
                            TRACKER_GROUP_ID=group, TRACKER_API_HOST="127.0.0.1", TRACKER_API_PORT=str(port))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/stats")
                break
            except OSError:
                if tracker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the tracker did not start:\n{tracker.log_tail()}") from None
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = map_assets.launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 850})
                map_assets.local_only(page)
                page.add_init_script(_COLLECTOR)
                page.goto(f"{base}/?base=plain&lat=30&lon=0&z=2")
                page.get_by_text("Connected", exact=True).wait_for(timeout=30_000)
                producer = session.producer("map-load", topic, "--rate", str(rate), "--duration", str(seconds),
                                            "--aircraft", str(aircraft), "--seed", "11")
                producer.wait(timeout=seconds + 120)
                time.sleep(3.0)  # the last WebSocket update (at most one a second) and its drawing
                seen = dict(page.evaluate("Array.from(window.__seen.entries())"))
                drawn = dict(page.evaluate("Array.from(window.__drawn.entries())"))
                draw_ms = page.evaluate("flightMap.drawTimesMs()")
                shown = int(page.get_by_label("Aircraft shown").inner_text().replace(",", ""))
            finally:
                browser.close()
        stats = _get(f"{base}/stats")
    finally:
        tracker.stop(timeout=20)
        _drop_schema(admin_url, session.run_id)
        if started_pg:
            postgres.stop()

    # Every record of the run's topic: "icao24|position time in ms" -> its Kafka timestamp (ms).
    produced = {}
    for record in read_topic(session.kafka, topic):
        state = decode_state(record.value, content_type_of(record.headers))  # JSON or Protobuf, by its header
        produced[f"{state['icao24']}|{int(state['time_position'] * 1000)}"] = record.timestamp
    latencies = [seen[key][0] - ts for key, ts in produced.items() if key in seen]
    # The split: record -> the tracker sending the update, and the update -> the page having parsed it.
    to_send = [seen[key][1] - ts for key, ts in produced.items() if key in seen]
    to_page = [seen[key][0] - seen[key][1] for key in produced if key in seen]
    # Until the map shows it: the first canvas redraw after the page received it.
    to_drawn = [drawn[key] - ts for key, ts in produced.items() if key in drawn]
    # The steady part: drop the first and last 10% of the records by produce time (start-up, drain).
    ordered = sorted(produced.items(), key=lambda kv: kv[1])
    cut = len(ordered) // 10
    steady = [seen[k][0] - ts for k, ts in ordered[cut:len(ordered) - cut] if k in seen]
    result = {
        "rate": rate, "seconds": seconds, "aircraft": aircraft, "produced": len(produced),
        "reached_browser": len(latencies), "aircraft_shown": shown, "aircraft_live": stats.get("aircraft"),
        "latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99),
                       "max": max(latencies) if latencies else None},
        "record_to_tracker_send_ms": {"p50": _percentile(to_send, 50), "p99": _percentile(to_send, 99)},
        "tracker_send_to_page_ms": {"p50": _percentile(to_page, 50), "p99": _percentile(to_page, 99)},
        "record_to_drawn_ms": {"count": len(to_drawn), "p50": _percentile(to_drawn, 50),
                               "p99": _percentile(to_drawn, 99)},
        "load_average": os.getloadavg()[0],
        "steady_latency_ms": {"p50": _percentile(steady, 50), "p99": _percentile(steady, 99)},
        "draw_ms": {"count": len(draw_ms), "p50": _percentile(draw_ms[-50:], 50), "p99": _percentile(draw_ms[-50:], 99)},
    }
    session.say(f"  {result['reached_browser']}/{result['produced']} positions reached the page; latency p50 "
                f"{result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms; redraw of "
                f"{shown} aircraft p50 {result['draw_ms']['p50']} ms")
    return result
