"""flight-alerts' state writes on the real AWS endpoint (MiniStack's DynamoDB, SNS and SQS): a position
that changes nothing writes nothing, a refresh renews the TTL, and the conditional write still decides
an alert when two invocations judged the same aircraft from the same stored state.

The handler runs in this process (two runtimes stand for two function containers), its clients on
the endpoint; the subscriber is a real SQS queue subscribed to a real topic."""
from __future__ import annotations

import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import boto3
import pytest

import alerts_handler
from alert_settings import AlertSettings
from alert_state import StateStore
from flight_domain.geofence_source import GeofenceSource
from flight_settings import FunctionSettings
from infra.deploy import alerts_resources
from pipeline_common.aws_clients import AwsClients

pytestmark = [pytest.mark.integration]

BOX = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "Box"}, "geometry": {
    "type": "Polygon", "coordinates": [[[10.0, 40.0], [12.0, 40.0], [12.0, 42.0], [10.0, 42.0], [10.0, 40.0]]]}}]}


def flight(icao24, t, lon):
    return {"icao24": icao24, "callsign": "IT1", "origin_country": "Germany", "time_position": t, "last_contact": t,
            "longitude": lon, "latitude": 41.0, "baro_altitude": 3000.0, "geo_altitude": None, "on_ground": False,
            "velocity": 220.0, "squawk": "2000"}


def event(states, offset):
    return {"eventSource": "SelfManagedKafka", "records": {"it-0": [
        {"topic": "it", "partition": 0, "offset": offset + i, "timestamp": 1,
         "value": base64.b64encode(json.dumps(s).encode()).decode()} for i, s in enumerate(states)]}}


class Endpoint:
    """A table (the deployer's definition, TTL on), a fences bucket, a topic and its subscriber queue."""

    def __init__(self):
        self.id = uuid.uuid4().hex[:6]
        self.clients = AwsClients()
        self.table = f"it-state-{self.id}"
        alerts_resources.ensure_table(alerts_resources.AlertResourceSettings.from_env(table=self.table),
                                      self.clients, say=lambda _m: None)
        self.bucket = f"it-fences-{self.id}"
        s3 = self.clients.s3
        s3.create_bucket(Bucket=self.bucket)
        s3.put_object(Bucket=self.bucket, Key="geofences.geojson", Body=json.dumps(BOX).encode())
        self.sns, self.sqs = boto3.client("sns"), boto3.client("sqs")
        self.topic = self.sns.create_topic(Name=f"it-alerts-{self.id}")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"it-alerts-{self.id}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    def runtime(self) -> alerts_handler.AlertsRuntime:
        """One function container's runtime (not the module's slot: two of them live side by side)."""
        settings = AlertSettings.from_env({"GEOFENCES_BUCKET": self.bucket, "ALERTS_TABLE": self.table,
                                           "GEOFENCE_REFRESH_S": "0", "ALERT_STATE_REFRESH_S": "300"},
                                          function=FunctionSettings(sns_topic_arn=self.topic, metrics_enabled=False))
        return alerts_handler.AlertsRuntime(
            settings=settings, sns=self.sns, cloudwatch=mock.Mock(),
            store=StateStore(self.clients.dynamodb, self.table, settings.state_ttl_s),
            geofences=GeofenceSource(self.clients.s3, self.bucket, "geofences.geojson", 0),
            executor=ThreadPoolExecutor(max_workers=4))

    def item(self, icao24) -> tuple[int, int]:
        item = self.clients.dynamodb.get_item(TableName=self.table, Key={"icao24": {"S": icao24}},
                                              ConsistentRead=True)["Item"]
        return int(item["t"]["N"]), int(item["expires_at"]["N"])

    def received(self, quiet_s=2.0) -> list[dict]:
        out, last = [], time.monotonic()
        while time.monotonic() - last < quiet_s:
            for m in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=1).get("Messages", []):
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
                last = time.monotonic()
        return out

    def close(self):
        self.clients.dynamodb.delete_table(TableName=self.table)
        self.sns.delete_topic(TopicArn=self.topic)
        self.sqs.delete_queue(QueueUrl=self.queue)
        for obj in self.clients.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            self.clients.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
        self.clients.s3.delete_bucket(Bucket=self.bucket)


@pytest.fixture
def endpoint(stack):
    e = Endpoint()
    yield e
    e.close()


def test_quiet_positions_write_nothing_a_refresh_renews_the_ttl_and_the_condition_still_decides(endpoint):
    a, b = endpoint.runtime(), endpoint.runtime()
    icao24, T = f"e{endpoint.id[:5]}", int(time.time()) - 3600
    try:
        # GIVEN an aircraft first seen outside the fence: its state is written once
        assert alerts_handler.process_event(event([flight(icao24, T, 9.0)], 0), a)["state_writes"] == 1
        stored_at = endpoint.item(icao24)
        # WHEN it is heard every 10 s for a minute without changing anything
        quiet = [alerts_handler.process_event(event([flight(icao24, T + 10 * n, 9.0 + n / 100)], n), a)
                 for n in range(1, 7)]
        # THEN nothing was written: the item is the one of its first position
        assert [r["state_writes"] for r in quiet] == [0] * 6 and endpoint.item(icao24) == stored_at

        # WHEN container b raises its ENTER, while container a had read the state before b wrote it
        before = a.store.load([icao24])
        entered = alerts_handler.process_event(event([flight(icao24, T + 70, 11.0)], 7), b)
        with mock.patch.object(a.store, "load", return_value=before):
            late = alerts_handler.process_event(event([flight(icao24, T + 80, 11.2)], 8), a)
        # THEN a's conditional write failed on the endpoint, a judged again from b's state: one ENTER
        assert (entered["alerts"], late["alerts"], late["failed"]) == (1, 0, 0)
        assert [(x["alert_type"], x["icao24"]) for x in endpoint.received()] == [("GEOFENCE_ENTER", icao24)]
        assert endpoint.item(icao24)[0] == T + 70

        # WHEN 300 s of position time have passed since that write, inside all along
        refreshed = alerts_handler.process_event(event([flight(icao24, T + 370, 11.3)], 9), a)
        # THEN the state (and its expiry) is written again, and nothing is raised
        assert (refreshed["state_writes"], refreshed["alerts"]) == (1, 0)
        t, expires_at = endpoint.item(icao24)
        assert t == T + 370 and expires_at >= stored_at[1] and endpoint.received(quiet_s=1.0) == []
    finally:
        a.close()
        b.close()
