"""The analytics of migration 0010 on the real PostgreSQL: what positions_clean drops, the hourly
aggregates per country / airline / altitude band, their refresh, and GET /analytics/hourly."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fastapi.testclient import TestClient

from tracker import store
from tracker.api.app import create_app
from tracker.api.deps import AppState
from tracker.api.routes import analytics
from tracker.consumer import TrackerStats
from tracker.flight_view import FlightJsonCache
from tracker.live import LivePicture
from tracker.service import api_pool
from tracker.settings import TrackerConfig
from tracker_support import isolated_schema

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
if NOW > datetime.now(timezone.utc):
    NOW -= timedelta(hours=1)  # every row in the past, half past an hour: no row on an hour boundary

COLUMNS = ("icao24", "time_position", "last_contact", "callsign", "origin_country", "longitude", "latitude",
           "baro_altitude", "on_ground", "velocity", "true_track", "vertical_rate", "kafka_partition", "kafka_offset")


def row(icao24, hours_ago=0, minute=0, callsign="DLH4AB  ", country="Germany", lon=8.5, lat=50.0, alt=10_000.0,
        on_ground=False, velocity=230.0, track=90.0, vrate=0.0):
    t = NOW - timedelta(hours=hours_ago) + timedelta(minutes=minute)
    return (icao24, t, t, callsign, country, lon, lat, alt, on_ground, velocity, track, vrate, 0, 0)


GOOD = [
    row("3c6444", minute=0), row("3c6444", minute=1),                         # one aircraft, two positions
    row("3c6445", callsign=" dlh12 ", alt=3000.0),                            # trimmed, upper-cased
    row("4ca123", callsign="RYR1", country="Ireland", alt=None, on_ground=True, velocity=0.0),
    row("a00001", callsign="N123AB", country="United States", alt=12_500.0),  # no airline: a registration
    row("a00002", callsign="   ", country="", alt=-100.0),                    # blank callsign and country
    row("3c6444", hours_ago=2),                                               # two hours earlier
]
IMPOSSIBLE = [
    row("bad001", lat=91.0), row("bad002", lon=-180.5), row("bad003", lat=0.0, lon=0.0),
    row("bad004", alt=25_000.0), row("bad005", velocity=900.0), row("bad006", track=400.0),
    row("bad007", vrate=-200.0), row("BAD008"), row("bad009", lat=None, lon=None),
]


@pytest.fixture
def db(database_url):
    with isolated_schema(database_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            store.prepare(conn, retention_days=7, ahead_days=1)
            store.ensure_partitions(conn, {(NOW - timedelta(hours=h)).date() for h in (0, 2)})
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO positions ({', '.join(COLUMNS)}) "
                                f"VALUES ({', '.join(['%s'] * len(COLUMNS))})", GOOD + IMPOSSIBLE)
            yield url, conn


def test_clean_positions_drop_impossible_values_and_trim_callsigns(db):
    _url, conn = db
    rows = conn.execute("SELECT icao24, callsign, origin_country FROM positions_clean").fetchall()
    assert sorted({r[0] for r in rows}) == ["3c6444", "3c6445", "4ca123", "a00001", "a00002"]
    assert len(rows) == len(GOOD)
    names = {r[0]: (r[1], r[2]) for r in rows}
    assert names["3c6445"] == ("DLH12", "Germany")
    assert names["a00002"] == (None, "Unknown")


def test_hourly_aggregates_count_aircraft_per_country_airline_and_band(db):
    _url, conn = db
    body = analytics.hourly(conn, hours=24)
    this_hour = NOW.replace(minute=0).isoformat().replace("+00:00", "Z")
    earlier = (NOW - timedelta(hours=2)).replace(minute=0).isoformat().replace("+00:00", "Z")

    def table(key, hour):
        return {r["name"]: (r["flights"], r["positions"]) for r in body[key] if r["hour"] == hour}

    # one Lufthansa aircraft with two positions counts once as a flight, twice as positions
    assert table("by_country", this_hour) == {"Germany": (2, 3), "Ireland": (1, 1), "United States": (1, 1),
                                              "Unknown": (1, 1)}
    assert table("by_country", earlier) == {"Germany": (1, 1)}
    assert table("by_airline", this_hour) == {"DLH": (2, 3), "RYR": (1, 1)}
    # 10,000 m = 32,808 ft; 3,000 m = 9,843 ft; 12,500 m = 41,010 ft; -100 m is low, not impossible
    assert table("by_altitude_band", this_hour) == {"30-40k": (1, 2), "0-10k": (2, 2), "ground": (1, 1),
                                                    "40k+": (1, 1)}
    assert body["hours"] == 24 and body["refreshed_at"] is not None


def test_views_are_refreshed_only_when_older_than_the_refresh_interval(db):
    _url, conn = db
    first = analytics.refresh_if_stale(conn, refresh_after_s=60)
    conn.execute("INSERT INTO positions (icao24, time_position, last_contact, on_ground, latitude, longitude, "
                 "kafka_partition, kafka_offset) VALUES ('c00001', %s, %s, true, 1, 1, 0, 0)", (NOW, NOW))
    # WHEN asked again within the interval THEN the same refresh is served (the new row not yet counted)
    assert analytics.refresh_if_stale(conn, refresh_after_s=60) == first
    countries = conn.execute("SELECT sum(flights) FROM analytics_hourly_country").fetchone()[0]
    # WHEN the interval is over THEN the views are recomputed and include it
    later = analytics.refresh_if_stale(conn, refresh_after_s=0)
    assert later > first
    assert conn.execute("SELECT sum(flights) FROM analytics_hourly_country").fetchone()[0] == countries + 1


def test_the_route_serves_the_rows_and_rejects_a_bad_hours_value_naming_it(db):
    url, _conn = db
    pool = api_pool(TrackerConfig.from_env(database_url=url), max_size=2, open=True)
    state = AppState(TrackerConfig.from_env(database_url=url), LivePicture(), TrackerStats(), pool,
                     lambda: None, FlightJsonCache())
    try:
        with TestClient(create_app(state)) as client:
            ok = client.get("/analytics/hourly?hours=6")
            assert ok.status_code == 200
            assert {r["name"] for r in ok.json()["by_airline"]} == {"DLH", "RYR"}
            for bad in ("0", "49", "x", "1.5"):
                resp = client.get(f"/analytics/hourly?hours={bad}")
                assert resp.status_code == 400, bad
                assert resp.json()["detail"].startswith("hours:")
            # the pages and Leaflet are served by the same app
            assert "Map of aircraft" in client.get("/").text
            assert "Aircraft per hour by country" in client.get("/stats.html").text
            assert client.get("/vendor/leaflet/leaflet.js").status_code == 200
    finally:
        pool.close()
