"""Geofences and alerts on the live map, in a real headless Chromium against `python -m tracker`, the
real broker, PostgreSQL and MiniStack: the fence flight-alerts reads is drawn with its name and limits,
and an alert published to the alerts topic appears in the page's list and selects its aircraft."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from flight_domain.alert_rules import Alert
from fault_harness import free_port, wait_until
from infra.deploy import alerts_resources, aws_resources
from test_map_browser import chromium, open_page  # noqa: F401 - the shared headless Chromium fixture
from tracker_support import fresh_topic, isolated_schema, produce, state, tracker_process

ROOT = Path(__file__).resolve().parents[2]
# Kept as an artefact on every run; UPDATE_DOCS_SCREENSHOT=1 also refreshes the README's one.
SCREENSHOT = ROOT / ".state" / "screenshots" / "map-alerts.png"
DOCS_SCREENSHOT = ROOT / "docs" / "map-alerts.png"
AIRCRAFT = 5  # tracker_support.state(n): latitude 40 + n/10, longitude -5
FENCE = "IT Bay"
BOX = [[-5.5, 39.9], [-4.5, 39.9], [-4.5, 40.7], [-5.5, 40.7], [-5.5, 39.9]]


def _get(url: str):
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def alerts_tracker(stack, database_url, tmp_path_factory):
    """The tracker on its own topic and schema, with an alerts topic, fences and queue of its own."""
    run = uuid.uuid4().hex[:8]
    clients = aws_resources.AwsClients()
    deployer = alerts_resources.AlertResourceSettings.from_env(
        topic_name=f"ItMapAlerts-{run}", bucket=f"it-map-fences-{run}", key="fences.geojson")
    topic_arn = alerts_resources.ensure_topic(deployer, clients, say=lambda _m: None)
    clients.s3.create_bucket(Bucket=deployer.bucket)
    fences = tmp_path_factory.mktemp("fences") / "fences.geojson"
    fences.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": FENCE, "ceiling_ft": 30000},
        "geometry": {"type": "Polygon", "coordinates": [BOX]}}]}))
    alerts_resources.put_geofences(fences, deployer, clients, say=lambda _m: None)
    queue = f"it-map-alerts-{run}"
    with fresh_topic(stack.bootstrap, partitions=1) as topic, isolated_schema(database_url) as url:
        port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "KAFKA_TOPIC": topic, "DATABASE_URL": url,
               "TRACKER_GROUP_ID": f"tracker-{topic}", "TRACKER_API_PORT": str(port), "TRACKER_API_HOST": "127.0.0.1",
               "TRACKER_BATCH_LINGER_S": "0.1", "ALERTS_TOPIC_NAME": deployer.topic_name,
               "GEOFENCES_BUCKET": deployer.bucket, "GEOFENCES_KEY": deployer.key,
               "TRACKER_ALERTS_QUEUE_NAME": queue, "TRACKER_ALERTS_RETRY_S": "2"}
        log_path = tmp_path_factory.mktemp("tracker") / "tracker.log"
        try:
            with tracker_process(env, log_path) as proc:
                base = f"http://127.0.0.1:{port}"
                wait_until(lambda: proc.poll() is None and _get(f"{base}/alerts")["feed"]["ok"], 60,
                           "the tracker to answer with its alerts feed subscribed")
                produce(stack.bootstrap, topic, [state(n, 0, time.time()) for n in range(1, AIRCRAFT + 1)])
                wait_until(lambda: _get(f"{base}/flights")["count"] == AIRCRAFT, 60,
                           "the tracker to hear the aircraft")
                yield base, clients, topic_arn
        finally:
            clients.sns.delete_topic(TopicArn=topic_arn)
            try:
                clients.sqs.delete_queue(QueueUrl=clients.sqs.get_queue_url(QueueName=queue)["QueueUrl"])
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def test_the_map_draws_the_fences_and_lists_a_published_alert(chromium, alerts_tracker):  # noqa: F811
    from playwright.sync_api import expect

    base, clients, topic_arn = alerts_tracker
    flight = next(f for f in _get(f"{base}/flights")["flights"] if f["icao24"] == f"{0xa00000 + 3:06x}")
    # GIVEN a person with the map open on the fenced area
    page, errors = open_page(chromium, f"{base}/?lat=40.3&lon=-5&z=8&base=plain")
    try:
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(AIRCRAFT), timeout=15000)
        # THEN the fence is drawn, named, with its limits, and the panel says how many are drawn
        fence = page.get_by_role("img", name=f"Geofence {FENCE} · surface – 30,000 ft")
        expect(fence).to_be_visible(timeout=10000)
        expect(page.get_by_text("1 geofence drawn.")).to_be_visible()
        fence.hover()
        expect(page.get_by_role("tooltip")).to_have_text(f"{FENCE} · surface – 30,000 ft")
        alerts = page.get_by_role("list", name="Recent alerts")
        expect(alerts.get_by_role("listitem")).to_have_count(0)

        # WHEN flight-alerts publishes that one of the aircraft entered the fence
        t = int(time.time())
        notification = {k: flight[k] for k in ("icao24", "callsign", "origin_country", "time_position", "longitude",
                                               "latitude", "altitude_feet", "velocity_knots")}
        entered = Alert("GEOFENCE_ENTER", flight["icao24"], t, notification, geofence=FENCE)
        clients.sns.publish(TopicArn=topic_arn, Message=json.dumps(entered.body()),
                            MessageAttributes=entered.attributes())
        # THEN it appears in the list without a reload, and its aircraft flashes on the map
        item = alerts.get_by_role("listitem").filter(has_text=f"Entered {FENCE}")
        expect(item).to_be_visible(timeout=20000)
        expect(item).to_contain_text(flight["callsign"].strip())
        expect(page.locator(".alert-ring")).to_have_count(1)  # the flash marker (no role: decoration)

        # WHEN the person clicks the alert THEN the aircraft's details open
        item.click()
        details = page.get_by_role("region", name="Aircraft details")
        expect(details).to_contain_text(flight["callsign"].strip())
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
            page.screenshot(path=str(DOCS_SCREENSHOT))

        # WHEN they close the details and click the aircraft itself, inside the fence (the map was panned to it)
        page.get_by_role("button", name="Close details").click()
        expect(details).to_be_hidden()
        page.wait_for_timeout(500)  # the pan animation
        page.get_by_role("application", name="Map of aircraft").click()
        # THEN the fence does not swallow the click: the aircraft's details open again
        expect(details).to_contain_text(flight["callsign"].strip())

        # WHEN they turn the geofences off in the layer control THEN the fence is no longer drawn
        # (the control opens when the pointer reaches it; its toggle is then hidden, so no hover() on it)
        box = page.get_by_role("button", name="Layers").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.get_by_label("Geofences").uncheck()
        expect(fence).to_have_count(0)
        assert errors == []
    finally:
        page.close()
