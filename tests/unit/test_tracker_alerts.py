"""The tracker's side of the map's fences and alerts, without servers: the alert buffer (bounded,
each alert_id once, newest first), the fences as GeoJSON for Leaflet, the query parameters, and the
feed reading a real SNS -> SQS subscription under moto."""
from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from flight_domain.alert_rules import Alert, alert_body
from flight_domain.geofence import parse_fences
from flight_domain.geofence_source import GeofenceSource
from pipeline_common.aws_clients import AwsClients
from tracker.alerts_feed import AlertBuffer, AlertFeed
from tracker.alerts_settings import TrackerAlertsSettings
from tracker.api.routes.alerts import parse_types
from tracker.filters import BadParameter
from tracker.geofences import fences_geojson

DEFAULT_FENCES = Path(__file__).resolve().parents[2] / "infra" / "deploy" / "geofences" / "default.geojson"


def body(n: int, t: int = 1_700_000_000, alert_type: str = "GEOFENCE_ENTER") -> dict:
    notification = {"icao24": f"abc{n:03d}", "time_position": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
                    "latitude": 1.0, "longitude": 1.0}
    return Alert(alert_type, f"abc{n:03d}", t, notification, geofence="Box" if "GEOFENCE" in alert_type else None,
                 squawk="7700" if alert_type == "EMERGENCY" else None).body()


def test_the_buffer_keeps_each_alert_once_and_only_the_most_recent():
    # GIVEN a buffer of 3
    buffer = AlertBuffer(keep=3)
    # WHEN five alerts arrive, one of them twice
    added = [buffer.add(body(n, 1_700_000_000 + n)) for n in (1, 2, 2, 3, 4, 5)]
    # THEN the duplicate is refused and counted, and the newest three are kept, newest first
    assert added == [True, True, False, True, True, True] and buffer.duplicates == 1
    assert [a["icao24"] for a in buffer.recent()] == ["abc005", "abc004", "abc003"]
    # AND an alert that scrolled out of the buffer is still recognised when it is redelivered
    assert buffer.add(body(1, 1_700_000_001)) is False


def test_the_buffer_hands_a_websocket_only_what_it_has_not_sent():
    buffer = AlertBuffer(keep=10)
    buffer.add(body(1))
    seq = buffer.seq
    buffer.add(body(2))
    buffer.add(body(3))
    seq, fresh = buffer.since_seq(seq)
    assert [a["icao24"] for a in fresh] == ["abc002", "abc003"]
    assert buffer.since_seq(seq) == (seq, [])


def test_recent_filters_on_position_time_and_type():
    buffer = AlertBuffer(keep=10)
    buffer.add(body(1, 1_700_000_000))
    buffer.add(body(2, 1_700_000_100, "EMERGENCY"))
    buffer.add(body(3, 1_700_000_200))
    assert [a["icao24"] for a in buffer.recent(since=1_700_000_100)] == ["abc003", "abc002"]
    assert [a["icao24"] for a in buffer.recent(types={"EMERGENCY"})] == ["abc002"]
    assert [a["icao24"] for a in buffer.recent(limit=1)] == ["abc003"]


def test_alert_types_are_checked_and_named():
    assert parse_types("emergency, GEOFENCE_EXIT") == {"EMERGENCY", "GEOFENCE_EXIT"}
    assert parse_types("") is None
    with pytest.raises(BadParameter, match="^type: LANDED is not one of GEOFENCE_ENTER"):
        parse_types("EMERGENCY,LANDED")


def test_a_queue_message_is_read_raw_or_in_its_sns_envelope_and_anything_else_is_refused():
    raw = json.dumps(body(1))
    assert alert_body(raw)["alert_id"] == body(1)["alert_id"]
    assert alert_body(json.dumps({"Type": "Notification", "Message": raw}))["icao24"] == "abc001"
    for bad in ("{not json", "[1, 2]", json.dumps({"icao24": "abc001"})):
        with pytest.raises(ValueError):
            alert_body(bad)


def test_the_default_fences_become_one_feature_each_as_the_function_parses_them():
    doc = json.loads(DEFAULT_FENCES.read_text())
    features = fences_geojson(doc, parse_fences(doc))
    assert [f["properties"]["name"] for f in features] == [f["properties"]["name"].strip() for f in doc["features"]]
    for feature, source in zip(features, doc["features"]):
        assert feature["properties"]["ceiling_ft"] == source["properties"].get("ceiling_ft")
        assert feature["geometry"]["type"] == source["geometry"]["type"]


def test_a_fence_across_the_antimeridian_is_drawn_as_one_shape():
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "Dateline"},
           "geometry": {"type": "Polygon",
                        "coordinates": [[[170, -5], [-170, -5], [-170, 5], [170, 5], [170, -5]]]}}]}
    ring = fences_geojson(doc, parse_fences(doc))[0]["geometry"]["coordinates"][0]
    assert [p[0] for p in ring] == [170, 190, 190, 170, 170]  # continuous: Leaflet draws 20 degrees, not 340


@mock_aws
def test_the_reader_gives_the_document_and_its_etag_and_no_object_is_no_fences(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="fences")
    source = GeofenceSource(s3, "fences", "f.geojson", refresh_s=0)
    assert source.current_version() == ((), None, None)
    doc = json.loads(DEFAULT_FENCES.read_text())
    etag = s3.put_object(Bucket="fences", Key="f.geojson", Body=json.dumps(doc).encode())["ETag"]
    fences, got_etag, document = source.current_version()
    assert len(fences) == len(doc["features"]) and got_etag == etag and document == doc


@mock_aws
def test_the_feed_subscribes_its_own_queue_and_reads_what_the_topic_publishes(monkeypatch):
    for key, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(key, value)
    clients = AwsClients(boto3.session.Session(region_name="us-east-1"))
    settings = TrackerAlertsSettings.from_env({}, topic_name="FlightAlerts", queue_name="tracker-q")
    feed = AlertFeed(settings, clients)
    # GIVEN no topic yet: the feed says so instead of failing
    with pytest.raises(RuntimeError, match="no SNS topic FlightAlerts"):
        feed._subscribe()
    topic = clients.sns.create_topic(Name="FlightAlerts")["TopicArn"]
    # WHEN the topic exists THEN the feed subscribes a queue with a short retention
    feed._subscribe()
    attributes = clients.sqs.get_queue_attributes(QueueUrl=feed.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "300"
    # WHEN an alert is published, then a message that is not one
    clients.sns.publish(TopicArn=topic, Message=json.dumps(body(7)))
    clients.sns.publish(TopicArn=topic, Message="hello")
    for _ in range(3):
        feed._poll_once(wait_s=0)
    # THEN the alert is kept, the other dropped and counted, and the queue is empty
    assert [a["icao24"] for a in feed.buffer.recent()] == ["abc007"]
    assert feed.status()["ok"] and feed.status()["rejected"] == 1 and feed.status()["received"] == 1
    assert "Messages" not in clients.sqs.receive_message(QueueUrl=feed.queue_url, WaitTimeSeconds=0)


def test_a_feed_that_is_off_says_so_and_starts_nothing():
    feed = AlertFeed(TrackerAlertsSettings.from_env({}, feed=False))
    feed.start()
    assert feed.status()["enabled"] is False and "TRACKER_ALERTS_FEED=false" in feed.status()["error"]
    assert feed._thread is None
