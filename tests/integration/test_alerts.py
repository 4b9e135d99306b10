"""flight-alerts on the real broker and MiniStack, behind its own event source mapping (a second
trigger process, its own consumer group) beside flight-processor's, both on one topic.

Expected alerts are written out by hand from the tracks (not computed by the alert rules)."""
from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

import alerts_handler
from alert_state import StateStore, to_item
from flight_domain import alert_rules
from flight_domain.geofence import parse_fences

from fault_harness import Subscriber, committed_lag, wait_until
from infra.deploy import alerts_resources, aws_resources

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BOX = [[10.0, 40.0], [12.0, 40.0], [12.0, 42.0], [10.0, 42.0], [10.0, 40.0]]


class AlertsRun:
    """One run: its own topic, fences object, subscriber queues and consumer groups."""

    def __init__(self, stack, tmp_path, spawn):
        self.id = uuid.uuid4().hex[:8]
        self.stack, self.spawn = stack, spawn
        self.topic = f"alerts-it-{self.id}"
        self.fence = f"IT box {self.id}"
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
        try:
            admin.create_topics([NewTopic(self.topic, 3, 1)])
        finally:
            admin.close()
        self.clients = aws_resources.AwsClients()
        base = aws_resources.AwsResourceSettings.from_env()
        self.settings = alerts_resources.AlertResourceSettings.from_env(
            key=f"it-{self.id}.geojson", base=base, function_env={"GEOFENCE_REFRESH_S": "1", "LOG_LEVEL": "INFO"})
        fences = tmp_path / "fences.geojson"
        fences.write_text(json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {"name": self.fence, "ceiling_ft": 30000},
            "geometry": {"type": "Polygon", "coordinates": [BOX]}}]}))
        say = lambda _m: None  # noqa: E731
        processor = aws_resources.deploy_resources(base, self.clients, say)
        deployed = alerts_resources.deploy(self.settings, self.clients, say)
        alerts_resources.put_geofences(fences, self.settings, self.clients, say)
        subscribe = aws_resources.subscribe_queue  # raw delivery, no filter policy: every message
        self.alerts = Subscriber(subscribe(deployed["alerts_topic_arn"], f"it-alerts-{self.id}", self.clients)["queue_url"])
        self.flights = Subscriber(subscribe(processor["topic_arn"], f"it-flights-{self.id}", self.clients)["queue_url"])
        self.alerts.start()
        self.flights.start()
        self.prefix = self.id[:4]

    def icao(self, n: int) -> str:
        return f"{self.prefix}{n:02x}"

    def produce(self, states: list[dict]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.stack.bootstrap, acks="all")
        try:
            for s in states:
                producer.send(self.topic, key=s["icao24"].encode(), value=json.dumps(s).encode())
            producer.flush(30)
        finally:
            producer.close()

    def trigger(self, function: str, group: str, *extra: str):
        env = {**os.environ, "LOG_FORMAT": "json", "TRIGGER_STATUS_INTERVAL_S": "2"}
        return self.spawn(env, "--topic", self.topic, "--group-id", group, "--function-name", function,
                          "--dlq-topic", f"{self.topic}-{function}-dlq", "--starting-position", "TRIM_HORIZON",
                          "--maximum-batching-window-s", "0.2", *extra)

    def ours(self, subscriber: Subscriber) -> list[dict]:
        bodies = [json.loads(b) for b in subscriber._bodies.values()]
        return [b for b in bodies if b.get("icao24", "").startswith(self.prefix)]

    def close(self) -> None:
        self.alerts.stop()
        self.flights.stop()


@pytest.fixture
def run(stack, tmp_path, spawn):
    r = AlertsRun(stack, tmp_path, spawn)
    yield r
    r.close()


def flight(icao24, t, lon, lat, *, squawk="2000", alt_m=3000.0, on_ground=False):
    return {"icao24": icao24, "callsign": f"IT{icao24[-2:].upper()}", "origin_country": "Germany",
            "time_position": t, "last_contact": t, "longitude": lon, "latitude": lat, "baro_altitude": alt_m,
            "geo_altitude": None, "on_ground": on_ground, "velocity": 220.0, "true_track": 90.0,
            "vertical_rate": 0.0, "squawk": squawk}


def test_tracks_crossing_a_fence_give_exactly_the_expected_alerts_and_flight_processor_gets_every_record(run):
    T = int(time.time()) - 600
    a, b, c, d, e = (run.icao(n) for n in range(5))
    states = [
        # a: crosses the box west to east
        flight(a, T, 9.0, 41.0), flight(a, T + 10, 10.5, 41.0), flight(a, T + 20, 11.5, 41.0), flight(a, T + 30, 13.0, 41.0),
        # b: enters and stays
        flight(b, T, 9.0, 41.0), flight(b, T + 10, 11.0, 41.0), flight(b, T + 20, 11.5, 41.0),
        # c: overflies above the 30,000 ft ceiling
        flight(c, T, 9.0, 41.0, alt_m=10000), flight(c, T + 10, 11.0, 41.0, alt_m=10000),
        flight(c, T + 20, 13.0, 41.0, alt_m=10000),
        # d: squawks 7700 far from the box, and keeps squawking it
        flight(d, T, 20.0, 41.0), flight(d, T + 10, 20.1, 41.0, squawk="7700"),
        flight(d, T + 20, 20.2, 41.0, squawk="7700"), flight(d, T + 30, 20.3, 41.0, squawk=None),
        # e: on the ground inside the box, then a state without a position: nothing
        flight(e, T, 11.0, 41.0, on_ground=True), {**flight(e, T + 10, 11.0, 41.0), "longitude": None, "latitude": None},
        # a again: its T+10 record delivered twice, and an old position (inside) arriving after its exit
        flight(a, T + 10, 10.5, 41.0), flight(a, T + 25, 11.8, 41.0),
    ]
    in_air = sum(1 for s in states if not s["on_ground"] and s["longitude"] is not None)
    run.produce(states)

    # WHEN both mappings run on the topic, each with its own consumer group
    processor = run.trigger("flight-processor", f"it-fp-{run.id}", "--until-idle-s", "4")
    alerts = run.trigger("flight-alerts", f"it-alerts-{run.id}", "--until-idle-s", "4", "--batch-size", "5")
    assert alerts.wait(timeout=240) == 0, alerts.log_path.read_text()[-3000:]
    assert processor.wait(timeout=240) == 0, processor.log_path.read_text()[-3000:]
    run.alerts.wait_quiet()
    run.flights.wait_quiet()

    # THEN the subscriber got exactly these alerts, once each
    got = sorted((x["icao24"], x["time_position"], x["alert_type"], x.get("geofence") or x.get("squawk"))
                 for x in run.ours(run.alerts))
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    assert got == sorted([
        (a, iso(T + 10), "GEOFENCE_ENTER", run.fence), (a, iso(T + 30), "GEOFENCE_EXIT", run.fence),
        (b, iso(T + 10), "GEOFENCE_ENTER", run.fence),
        (d, iso(T + 10), "EMERGENCY", "7700"),
    ])
    emergency = next(x for x in run.ours(run.alerts) if x["alert_type"] == "EMERGENCY")
    assert emergency["emergency"] == "general emergency" and emergency["callsign"] == f"IT{d[-2:].upper()}"
    # AND flight-processor, on its own mapping, still published every record that was in the air
    assert len(run.ours(run.flights)) == in_air == 16


@pytest.mark.slow
def test_alerts_trigger_killed_with_sigkill_mid_run_loses_no_alert(run, record_property):
    # GIVEN 100 aircraft zig-zagging across the fence edge: 10 positions each, inside at odd ones
    T = int(time.time()) - 3600
    aircraft = [run.icao(n) for n in range(100)]
    states = [flight(x, T + 10 * j, 10.5 if j % 2 else 9.5, 41.0) for j in range(10) for x in aircraft]
    expected = {f"{x}:{T + 10 * j}:{'GEOFENCE_ENTER' if j % 2 else 'GEOFENCE_EXIT'}:{run.fence}"
                for x in aircraft for j in range(1, 10)}
    run.produce(states)
    group = f"it-kill-{run.id}"
    extra = ("--batch-size", "10")
    env_id = {"TRIGGER_GROUP_INSTANCE_ID": f"{group}-1"}
    os.environ.update(env_id)  # static membership: the restarted process takes its partitions back at once
    try:
        proc = run.trigger("flight-alerts", group, *extra)

        def committed() -> int:
            lag = committed_lag(run.stack.bootstrap, run.topic, group)
            return 0 if lag is None else len(states) - lag

        # WHEN it is killed with SIGKILL once it has committed some of the records, then started again
        wait_until(lambda: committed() >= 200, 240, "the alerts trigger to commit 200 records")
        at_kill = committed()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert at_kill < len(states), "the run finished before the kill: not mid-run"
        final = run.trigger("flight-alerts", group, *extra, "--until-idle-s", "4")
        assert final.wait(timeout=400) == 0, final.log_path.read_text()[-3000:]
    finally:
        for key in env_id:
            os.environ.pop(key, None)
    run.alerts.wait_quiet()

    # THEN every expected alert arrived; duplicates (same alert_id twice) are counted and reported
    ids = [x["alert_id"] for x in run.ours(run.alerts)]
    missing, unexpected = expected - set(ids), set(ids) - expected
    duplicates = len(ids) - len(set(ids))
    record_property("alerts_expected", len(expected))
    record_property("alerts_duplicates", duplicates)
    print(f"alerts after SIGKILL at {at_kill}/{len(states)} committed: expected {len(expected)}, "
          f"received {len(ids)}, missing {len(missing)}, unexpected {len(unexpected)}, duplicates {duplicates}")
    assert not missing, sorted(missing)[:10]
    assert not unexpected, sorted(unexpected)[:10]


def test_with_a_fifo_topic_an_alert_re_sent_after_a_crash_reaches_the_subscriber_once(stack, tmp_path):
    # GIVEN flight-alerts deployed with ALERTS_FIFO=true (FlightAlerts.fifo, an SQS FIFO subscriber)
    run_id = uuid.uuid4().hex[:6]
    clients = aws_resources.AwsClients()
    settings = alerts_resources.AlertResourceSettings.from_env(
        fifo=True, function_name=f"flight-alerts-fifo-{run_id}", queue_name=f"it-alerts-{run_id}",
        key=f"it-fifo-{run_id}.geojson", function_env={"GEOFENCE_REFRESH_S": "1"})
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "Box"},
                                                      "geometry": {"type": "Polygon", "coordinates": [BOX]}}]}
    (tmp_path / "fences.geojson").write_text(json.dumps(doc))
    quiet = lambda _m: None  # noqa: E731
    try:
        deployed = alerts_resources.deploy(settings, clients, quiet)
        alerts_resources.put_geofences(tmp_path / "fences.geojson", settings, clients, quiet)
        assert deployed["alerts_topic_arn"].endswith(":FlightAlerts.fifo")
        icao24 = f"f{run_id[:5]}"
        state = flight(icao24, int(time.time()) - 60, 11.0, 41.0)
        event = {"eventSource": "SelfManagedKafka", "records": {"t-0": [
            {"topic": "t", "partition": 0, "offset": 7, "timestamp": 1,
             "value": base64.b64encode(json.dumps(state).encode()).decode()}]}}

        def invoke() -> dict:
            answer = clients.lambda_.invoke(FunctionName=settings.function_name, Payload=json.dumps(event))
            return json.loads(answer["Payload"].read())

        # WHEN the record is processed, and then the crash between publish and clearing the outbox is
        # re-enacted (the outbox written back) and the record is delivered again
        first = invoke()
        alert = alert_rules.fold(None, [alert_rules.observe(state)[0]], parse_fences(doc), alert_rules.Watchlist(),
                                 1800)[1][0]
        stored = StateStore(clients.dynamodb, settings.table, 86400).get(icao24)
        clients.dynamodb.put_item(TableName=settings.table, Item=to_item(
            icao24, stored.state, (alerts_handler._outbox_entry(alert, fifo=True),), 86400))
        second = invoke()

        # THEN the function sent it twice and says so, and the subscriber got it once
        assert (first["alerts"], first["published"]) == (1, 1), first
        assert (second["republished"], second["published"]) == (1, 1), second
        received = alerts_resources.receive_alerts(settings, clients, quiet_s=3.0, on_alert=quiet)
        assert [b["alert_id"] for b in received] == [alert.alert_id]
    finally:
        clients.lambda_.delete_function(FunctionName=settings.function_name)
