"""The tracker's REST API and WebSocket through FastAPI's TestClient, against the real PostgreSQL."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from saved_events import load_event
from tracker import store
from tracker.api.app import create_app
from tracker.api.deps import AppState
from tracker.consumer import TrackerStats
from tracker.flight_view import FlightJsonCache
from tracker.live import LivePicture
from tracker.records import decode
from tracker.service import api_pool
from tracker.settings import TrackerConfig
from tracker_support import isolated_schema

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def position(icao24: str, seconds_ago: int = 0, **fields):
    s = load_event("raw_state.json")
    s.update(icao24=icao24, time_position=(NOW - timedelta(seconds=seconds_ago)).timestamp(),
             last_contact=(NOW - timedelta(seconds=seconds_ago)).timestamp(), **fields)
    return decode(json.dumps(s).encode(), 0, 0)


# Frankfurt at FL370, a ground vehicle at Heathrow, a low Air France near Paris, one over the Pacific.
LIVE = [
    position("3c6444", callsign="DLH9LF  ", origin_country="Germany"),
    position("400001", callsign="BAW12   ", origin_country="United Kingdom", latitude=51.47, longitude=-0.45,
             on_ground=True, baro_altitude=None, geo_altitude=None, velocity=5.0),
    position("39abcd", callsign="AFR1234 ", origin_country="France", latitude=48.9, longitude=2.4,
             baro_altitude=1524.0),
    position("a1b2c3", callsign="UAL1    ", origin_country="United States", latitude=20.0, longitude=179.5),
]


@pytest.fixture
def api(database_url):
    with isolated_schema(database_url) as url:
        with store.connect(url, "it-tracker-api") as conn:
            store.prepare(conn, retention_days=7, ahead_days=1)
            writer = store.PositionWriter(conn)
            # History: the Lufthansa's track over 3 minutes, and an aircraft no longer live.
            writer.write([position("3c6444", seconds_ago=s, latitude=50.0 + s / 1000) for s in (180, 120, 60, 0)]
                         + [position("abcdef", seconds_ago=3600, callsign="OLD1    ")])
        live = LivePicture()
        live.update(LIVE)
        problems = {"kafka": None}
        config = TrackerConfig.from_env(database_url=url)
        pool = api_pool(config, max_size=4, open=True)
        state = AppState(config, live, TrackerStats(), pool,
                         lambda: problems["kafka"], FlightJsonCache())
        with TestClient(create_app(state)) as client:
            client.live, client.problems = live, problems
            yield client
        pool.close()


def test_flights_lists_the_live_picture_with_converted_units(api):
    body = api.get("/flights").json()
    assert body["count"] == 4 and len(body["flights"]) == 4
    dlh = next(f for f in body["flights"] if f["icao24"] == "3c6444")
    assert dlh["callsign"] == "DLH9LF" and dlh["altitude_feet"] == 37000 and dlh["velocity_knots"] == 448
    assert dlh["time_position"].endswith("Z") and body["time"].endswith("Z")


def test_flights_answers_304_to_its_etag_until_the_picture_moves(api):
    first = api.get("/flights")
    etag = first.headers["etag"]
    again = api.get("/flights", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    # a filtered answer of the same view carries the same ETag (an ETag is per URL)
    assert api.get("/flights?country=germany", headers={"If-None-Match": etag}).status_code == 304
    # WHEN an aircraft moves and the push interval (1 s) has passed THEN the answer is new
    api.live.update([position("3c6444", seconds_ago=-5, latitude=50.5)])
    time.sleep(1.05)
    moved = api.get("/flights", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert next(f for f in moved.json()["flights"] if f["icao24"] == "3c6444")["latitude"] == 50.5


@pytest.mark.parametrize("query, expected", [
    ("bbox=45,-5,55,10", {"3c6444", "400001", "39abcd"}),
    ("bbox=10,170,30,-170", {"a1b2c3"}),                  # across the antimeridian
    ("airborne=true", {"3c6444", "39abcd", "a1b2c3"}),
    ("airborne=false", {"400001"}),
    ("callsign=afr", {"39abcd"}),
    ("country=germany", {"3c6444"}),
    ("min_altitude_ft=10000", {"3c6444", "a1b2c3"}),
    ("bbox=45,-5,55,10&airborne=true&min_altitude_ft=4000", {"3c6444", "39abcd"}),
])
def test_flights_filters(api, query, expected):
    body = api.get(f"/flights?{query}").json()
    assert {f["icao24"] for f in body["flights"]} == expected and body["count"] == len(expected)


def test_geojson_has_lon_lat_points_with_the_flight_as_properties(api):
    resp = api.get("/flights?format=geojson&country=France")
    doc = resp.json()
    assert resp.headers["content-type"].startswith("application/geo+json")
    assert doc["type"] == "FeatureCollection"
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [2.4, 48.9]}
    assert doc["features"][0]["properties"]["callsign"] == "AFR1234"


@pytest.mark.parametrize("query, parameter", [
    ("bbox=1,2,3", "bbox"), ("bbox=95,0,96,1", "bbox"), ("airborne=perhaps", "airborne"),
    ("min_altitude_ft=high", "min_altitude_ft"), ("format=xml", "format"),
])
def test_a_bad_parameter_gets_400_naming_it(api, query, parameter):
    resp = api.get(f"/flights?{query}")
    assert resp.status_code == 400 and resp.json()["detail"].startswith(f"{parameter}:")


def test_one_flight_is_live_else_from_history_else_404(api):
    assert api.get("/flights/3C6444").json()["callsign"] == "DLH9LF"
    old = api.get("/flights/abcdef")
    assert old.status_code == 200 and old.json()["callsign"] == "OLD1"
    unknown = api.get("/flights/fedcba")
    assert unknown.status_code == 404 and "fedcba" in unknown.json()["detail"]
    bad = api.get("/flights/not-hex")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("icao24:")


def test_track_is_oldest_first_and_honours_since_and_limit(api):
    points = api.get("/flights/3c6444/track").json()["points"]
    assert [p["latitude"] for p in points] == [50.18, 50.12, 50.06, 50.0]
    since = int((NOW - timedelta(seconds=90)).timestamp())
    recent = api.get(f"/flights/3c6444/track?since={since}").json()["points"]
    assert [p["latitude"] for p in recent] == [50.06, 50.0]
    iso_since = (NOW - timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    assert api.get(f"/flights/3c6444/track?since={iso_since}").json()["points"] == recent
    assert [p["latitude"] for p in api.get("/flights/3c6444/track?limit=1").json()["points"]] == [50.0]
    assert api.get("/flights/3c6444/track?limit=0").status_code == 400
    assert api.get("/flights/3c6444/track?since=soon").json()["detail"].startswith("since:")
    assert api.get("/flights/fedcba/track").status_code == 404


def test_stats_counts_the_live_picture(api):
    body = api.get("/stats").json()
    assert (body["aircraft"], body["airborne"], body["on_ground"]) == (4, 3, 1)
    assert body["by_country"]["Germany"] == 1
    assert body["by_altitude_band"] == {"ground": 1, "0-10k": 1, "10-20k": 0, "20-30k": 0, "30-40k": 2, "40k+": 0}
    assert {"positions_per_s", "positions_total", "consumer_lag"} <= set(body)


def test_health_is_503_naming_the_part_that_is_down(api):
    ok = api.get("/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    api.problems["kafka"] = "NoBrokersAvailable: no broker"
    down = api.get("/health")
    assert down.status_code == 503
    assert down.json()["kafka"] == {"ok": False, "error": "NoBrokersAvailable: no broker"}
    assert down.json()["database"]["ok"] is True


def test_health_is_503_when_the_database_cannot_be_reached():
    pool = ConnectionPool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=True,
                          kwargs={"connect_timeout": 1})
    state = AppState(TrackerConfig(), LivePicture(), TrackerStats(), pool, lambda: None, FlightJsonCache())
    try:
        with TestClient(create_app(state)) as client:
            resp = client.get("/health")
        assert resp.status_code == 503 and resp.json()["database"]["ok"] is False
    finally:
        pool.close()


def test_websocket_sends_a_snapshot_then_only_changes_for_its_bbox(api):
    with api.websocket_connect("/ws/flights?bbox=45,-5,55,10") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot"
        assert {f["icao24"] for f in snap["flights"]} == {"3c6444", "400001", "39abcd"}
        # WHEN the Lufthansa moves, the Air France leaves the box and the Pacific aircraft moves (outside)
        api.live.update([position("3c6444", seconds_ago=-5, latitude=50.5),
                         position("39abcd", seconds_ago=-5, latitude=60.0, longitude=2.4),
                         position("a1b2c3", seconds_ago=-5, latitude=21.0, longitude=179.5)])
        started = time.monotonic()
        update = ws.receive_json()
        assert update["type"] == "update" and time.monotonic() - started < 3
        assert [f["icao24"] for f in update["changed"]] == ["3c6444"] and update["changed"][0]["latitude"] == 50.5
        assert update["removed"] == ["39abcd"]


def test_websocket_pushes_at_most_once_per_interval_however_often_the_picture_changes(api):
    with api.websocket_connect("/ws/flights") as ws:
        assert ws.receive_json()["type"] == "snapshot"
        received = []
        for n in range(3):
            # a change, then another while the first push is going out, then a third
            api.live.update([position("3c6444", seconds_ago=-10 - 2 * n, latitude=50.1 + n)])
            api.live.update([position("400001", seconds_ago=-11 - 2 * n, latitude=51.1 + n)])
            received.append((ws.receive_json(), time.monotonic()))
        # every change reached the client, none of the pushes came sooner than the interval (1 s) after the last
        for n, (msg, _) in enumerate(received):
            assert msg["type"] == "update"
            assert {f["icao24"]: f["latitude"] for f in msg["changed"]} == {"3c6444": 50.1 + n, "400001": 51.1 + n}
        gaps = [b - a for (_, a), (_, b) in zip(received, received[1:])]
        assert min(gaps) >= 0.95, gaps


def test_websocket_with_a_bad_bbox_says_why_and_closes(api):
    with api.websocket_connect("/ws/flights?bbox=nope") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["detail"].startswith("bbox:")


def test_openapi_docs_are_served(api):
    assert api.get("/docs").status_code == 200
    assert "/flights/{icao24}/track" in api.get("/openapi.json").json()["paths"]
