"""The map's fences and alerts through the tracker's API (FastAPI TestClient), against the real
PostgreSQL and MiniStack: GET /geofences reads the fences object flight-alerts reads, GET /alerts and
the WebSocket show what is published to the alerts topic, once each."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from flight_domain.alert_rules import Alert
from fault_harness import wait_until
from infra.deploy import alerts_resources, aws_resources
from tracker.alerts_feed import AlertFeed
from tracker.alerts_settings import TrackerAlertsSettings
from tracker.api.app import create_app
from tracker.api.deps import AppState
from tracker.consumer import TrackerStats
from tracker.flight_view import FlightJsonCache
from tracker.geofences import TrackerGeofences
from tracker.live import LivePicture
from tracker.service import api_pool
from tracker.settings import TrackerConfig
from tracker_support import isolated_schema

pytestmark = pytest.mark.integration

# A fence across the antimeridian written with a jump (170 .. -170), with a hole, a floor and a ceiling.
FENCES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Dateline box", "floor_ft": 1000, "ceiling_ft": 20000,
                                       "description": "across 180"},
     "geometry": {"type": "Polygon", "coordinates": [
         [[170.0, -10.0], [-170.0, -10.0], [-170.0, 10.0], [170.0, 10.0], [170.0, -10.0]],
         [[175.0, -1.0], [176.0, -1.0], [176.0, 1.0], [175.0, 1.0], [175.0, -1.0]]]}},
    {"type": "Feature", "properties": {"name": "Two islands"},
     "geometry": {"type": "MultiPolygon", "coordinates": [
         [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]],
         [[[2.0, 0.0], [3.0, 0.0], [3.0, 1.0], [2.0, 1.0], [2.0, 0.0]]]]}},
]}


def alert(alert_type: str, icao24: str, t: int, **subject) -> Alert:
    notification = {"icao24": icao24, "callsign": "ITA123", "origin_country": "Germany",
                    "time_position": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)), "longitude": 175.5,
                    "latitude": 5.0, "altitude_feet": 12000, "velocity_knots": 420}
    return Alert(alert_type, icao24, t, notification, **subject)


def publish(clients, topic_arn: str, a: Alert) -> None:
    """As flight-alerts publishes: the body JSON and the filterable message attributes."""
    clients.sns.publish(TopicArn=topic_arn, Message=json.dumps(a.body()), MessageAttributes=a.attributes())


@pytest.fixture
def world(stack, database_url, tmp_path):
    """An alerts topic, a fences bucket and a tracker queue of this test's own on MiniStack."""
    run = uuid.uuid4().hex[:8]
    clients = aws_resources.AwsClients()
    settings = TrackerAlertsSettings.from_env(
        geofences_bucket=f"it-fences-{run}", geofences_key="fences.geojson", topic_name=f"ItAlerts-{run}",
        queue_name=f"it-tracker-alerts-{run}", geofence_refresh_s=0, retry_s=1.0)
    topic_arn = clients.sns.create_topic(Name=settings.topic_name)["TopicArn"]
    yield clients, settings, topic_arn
    clients.sns.delete_topic(TopicArn=topic_arn)


def client_for(database_url, settings: TrackerAlertsSettings, feed: AlertFeed | None):
    schema = isolated_schema(database_url)
    url = schema.__enter__()
    pool = api_pool(TrackerConfig.from_env(database_url=url), max_size=2, open=True)
    state = AppState(TrackerConfig.from_env(database_url=url), LivePicture(), TrackerStats(), pool, lambda: None,
                     FlightJsonCache(), feed, TrackerGeofences(settings))
    client = TestClient(create_app(state))

    def close():
        client.close()
        pool.close()
        schema.__exit__(None, None, None)
    return client, close


def test_geofences_are_the_functions_fences_as_geojson_with_an_etag(world, database_url, tmp_path):
    clients, settings, _topic = world
    api, close = client_for(database_url, settings, None)
    try:
        # GIVEN no fences bucket yet (the alerts side not deployed)
        # WHEN the map asks for the fences THEN 503 names the bucket and the reason, and the API still answers
        missing = api.get("/geofences")
        assert missing.status_code == 503
        assert f"s3://{settings.geofences_bucket}/fences.geojson" in missing.json()["detail"]
        assert "NoSuchBucket" in missing.json()["detail"]
        assert api.get("/flights").status_code == 200

        # GIVEN the bucket, but no fences object: an empty collection, not an error
        clients.s3.create_bucket(Bucket=settings.geofences_bucket)
        empty = api.get("/geofences")
        assert empty.status_code == 200 and empty.json()["features"] == [] and empty.json()["count"] == 0

        # GIVEN fences put by `make geofences` (validated by the function's parser)
        path = tmp_path / "fences.geojson"
        path.write_text(json.dumps(FENCES))
        deployer = alerts_resources.AlertResourceSettings.from_env(bucket=settings.geofences_bucket,
                                                                   key=settings.geofences_key)
        alerts_resources.put_geofences(path, deployer, clients, say=lambda _m: None)
        # WHEN the map asks
        got = api.get("/geofences")
        # THEN every fence, named, with its limits and properties; the dateline ring unwrapped (drawn as one box)
        assert got.status_code == 200 and got.headers["content-type"].startswith("application/geo+json")
        body = got.json()
        assert [f["properties"]["name"] for f in body["features"]] == ["Dateline box", "Two islands"]
        box, islands = body["features"]
        assert box["properties"] == {"name": "Dateline box", "floor_ft": 1000, "ceiling_ft": 20000,
                                     "description": "across 180"}
        assert box["geometry"]["type"] == "Polygon" and len(box["geometry"]["coordinates"]) == 2  # outer + hole
        assert [p[0] for p in box["geometry"]["coordinates"][0]] == [170.0, 190.0, 190.0, 170.0, 170.0]
        assert islands["geometry"]["type"] == "MultiPolygon" and len(islands["geometry"]["coordinates"]) == 2
        assert islands["properties"]["floor_ft"] is None
        etag = got.headers["etag"]

        # WHEN it asks again with the ETag THEN 304 and no body
        again = api.get("/geofences", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        # WHEN the fences change THEN the next poll gets the new ones and a new ETag
        path.write_text(json.dumps({**FENCES, "features": FENCES["features"][1:]}))
        alerts_resources.put_geofences(path, deployer, clients, say=lambda _m: None)
        changed = api.get("/geofences", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert [f["properties"]["name"] for f in changed.json()["features"]] == ["Two islands"]
    finally:
        close()
        for obj in clients.s3.list_objects_v2(Bucket=settings.geofences_bucket).get("Contents", []):
            clients.s3.delete_object(Bucket=settings.geofences_bucket, Key=obj["Key"])
        clients.s3.delete_bucket(Bucket=settings.geofences_bucket)


def test_alerts_published_to_the_topic_are_listed_once_and_pushed_on_the_websocket(world, database_url):
    clients, settings, topic_arn = world
    feed = AlertFeed(settings)
    feed.start()
    api, close = client_for(database_url, settings, feed)
    try:
        # GIVEN the tracker's feed subscribed to the alerts topic
        wait_until(lambda: api.get("/alerts").json()["feed"]["ok"], 30, "the alerts feed to subscribe")
        t = int(time.time()) - 60
        enter = alert("GEOFENCE_ENTER", "abc123", t, geofence="Dateline box")
        emergency = alert("EMERGENCY", "def456", t + 5, squawk="7700")
        with api.websocket_connect("/ws/flights") as ws:
            assert ws.receive_json()["type"] == "snapshot"
            # WHEN flight-alerts publishes two alerts, one of them twice (at-least-once delivery)
            publish(clients, topic_arn, enter)
            publish(clients, topic_arn, emergency)
            publish(clients, topic_arn, enter)
            # THEN the WebSocket pushes each of them, once
            pushed = []
            while len(pushed) < 2:
                msg = ws.receive_json()
                if msg["type"] == "alert":
                    pushed.append(msg["alert"]["alert_id"])
            assert sorted(pushed) == sorted([enter.alert_id, emergency.alert_id])

        wait_until(lambda: api.get("/alerts").json()["feed"]["received"] == 3, 30, "the duplicate to arrive")
        # THEN GET /alerts lists each once, newest first, with the function's body
        body = api.get("/alerts").json()
        assert [a["alert_id"] for a in body["alerts"]] == [emergency.alert_id, enter.alert_id]
        assert body["alerts"][0]["emergency"] == "general emergency" and body["alerts"][0]["squawk"] == "7700"
        assert body["feed"]["duplicates"] == 1 and body["feed"]["topic_arn"] == topic_arn
        # and filters by type and by position time
        assert [a["alert_type"] for a in api.get("/alerts?type=geofence_enter").json()["alerts"]] == ["GEOFENCE_ENTER"]
        assert [a["alert_id"] for a in api.get(f"/alerts?since={t + 1}").json()["alerts"]] == [emergency.alert_id]
        # a bad parameter is a 400 naming it
        bad = api.get("/alerts?type=LANDED")
        assert bad.status_code == 400 and bad.json()["detail"].startswith("type: LANDED is not one of")
    finally:
        feed.stop()
        close()
        try:
            clients.sqs.delete_queue(QueueUrl=clients.sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"])
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def test_without_a_topic_the_feed_says_why_and_the_tracker_still_serves(world, database_url):
    _clients, settings, _topic = world
    # GIVEN a tracker whose alerts topic does not exist (the alerts side not deployed)
    feed = AlertFeed(TrackerAlertsSettings.from_env(topic_name=f"Absent-{uuid.uuid4().hex[:6]}", retry_s=1.0,
                                                    queue_name=settings.queue_name))
    feed.start()
    api, close = client_for(database_url, settings, feed)
    try:
        # WHEN the map asks for alerts THEN an empty list and the reason, and the rest of the API answers
        wait_until(lambda: api.get("/alerts").json()["feed"]["error"], 30, "the feed to report")
        body = api.get("/alerts").json()
        assert body["alerts"] == [] and body["feed"]["ok"] is False
        assert "no SNS topic Absent-" in body["feed"]["error"]
        assert api.get("/flights").status_code == 200
    finally:
        feed.stop()
        close()
