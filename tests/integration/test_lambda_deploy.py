"""The function deployed for real to the native AWS endpoint (MiniStack runs it as a local Python
process): invoked with a Kafka ESM event, its notifications reach the filtered demo subscriber."""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from infra.demo import observe

from infra.deploy import aws_resources
from infra.deploy.aws_resources import AwsClients, AwsResourceSettings

pytestmark = pytest.mark.integration

TOPIC = "aviation-data"


def flight(icao24: str, country: str, **overrides) -> dict:
    state = {"icao24": icao24, "callsign": f"T{icao24[:5].upper()}  ", "origin_country": country,
             "time_position": 1722515696, "last_contact": 1722515697, "longitude": 8.5712, "latitude": 50.0332,
             "baro_altitude": 11277.6, "on_ground": False, "velocity": 230.5, "true_track": 93.2,
             "vertical_rate": 0.0, "sensors": None, "geo_altitude": 11430.0, "squawk": "1000", "spi": False,
             "position_source": 0, "category": 0, "source": "synthetic", "fetched_at": 1722515698.1}
    state.update(overrides)
    return state


def esm_event(values: list[bytes | None]) -> dict:
    """A SelfManagedKafka ESM event with one record per value on partition 0, shaped as AWS documents it."""
    records = [{"topic": TOPIC, "partition": 0, "offset": offset, "timestamp": 1722515698000 + offset,
                "timestampType": "CREATE_TIME", "key": base64.b64encode(f"k{offset}".encode()).decode(),
                "value": None if value is None else base64.b64encode(value).decode(),
                "headers": [{"source": list(b"synthetic")}]}
               for offset, value in enumerate(values)]
    return {"eventSource": "SelfManagedKafka", "bootstrapServers": "localhost:9092",
            "records": {f"{TOPIC}-0": records}}


@pytest.fixture
def deployment(stack):
    """Unique names so parallel runs and the demo's own resources are never touched."""
    suffix = uuid.uuid4().hex[:8]
    settings = AwsResourceSettings.from_env(
        {}, topic_name=f"FlightNotifications-it-{suffix}", function_name=f"flight-processor-it-{suffix}",
        queue_name=f"flight-notifications-it-{suffix}", notify_countries=("Germany", "France"))
    clients = AwsClients()
    try:
        yield settings, clients, aws_resources.deploy_resources(settings, clients, say=lambda _m: None)
    finally:
        aws_resources.destroy(settings, clients, say=lambda _m: None)


def test_deployed_function_turns_an_esm_batch_into_filtered_notifications(deployment):
    settings, clients, deployed = deployment
    # GIVEN the function deployed twice (create, then the update path) to the native endpoint
    again = aws_resources.deploy_lambda(deployed["topic_arn"], deployed["role_arn"], settings, clients,
                                        say=lambda _m: None)
    assert again["action"] == "updated" and again["function_arn"] == deployed["function_arn"]
    config = clients.lambda_.get_function_configuration(FunctionName=settings.function_name)
    assert config["State"] == "Active" and config["LastUpdateStatus"] == "Successful"

    # WHEN it is invoked with an ESM batch: two subscribed countries, one other, one on the ground,
    # a tombstone and a malformed value
    values = [json.dumps(flight("3c6444", "Germany")).encode(),
              json.dumps(flight("394a0b", "France", callsign="")).encode(),
              json.dumps(flight("343abc", "Spain")).encode(),
              json.dumps(flight("3c6445", "Germany", on_ground=True)).encode(),
              None,
              b"{not json"]
    response = clients.lambda_.invoke(FunctionName=settings.function_name,
                                      Payload=json.dumps(esm_event(values)).encode())
    result = json.loads(response["Payload"].read())

    # THEN the response is the batch report the trigger expects
    assert "FunctionError" not in response, result
    assert {k: result[k] for k in ("received", "in_air", "published", "filtered", "failed")} == {
        "received": 6, "in_air": 3, "published": 3, "filtered": 1, "failed": 2}
    assert result["batchItemFailures"] == [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 4}},
                                           {"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 5}}]
    assert [r["offset"] for r in result["failureReasons"]] == [4, 5]

    # AND the subscriber (Germany, France) receives exactly those two notifications, in the seed's format
    lines: list[str] = []
    observe.notifications(max_messages=2, seconds=30, settings=settings, clients=clients,
                                on_message=lines.append, say=lambda _m: None)
    received = {n["icao24"]: n for n in map(json.loads, lines)}
    assert sorted(received) == ["394a0b", "3c6444"]
    assert received["3c6444"] == {"icao24": "3c6444", "callsign": "T3C644", "origin_country": "Germany",
                                  "time_position": "2024-08-01T12:34:56Z", "longitude": 8.5712,
                                  "latitude": 50.0332, "altitude_feet": 37000, "velocity_knots": 448}
    assert received["394a0b"]["callsign"] is None
    # Spain's notification was published but filtered out by the subscription
    assert observe.notifications(seconds=2, settings=settings, clients=clients, say=lambda _m: None) == 0

    # AND count-messages reads the function's Published metric
    assert observe.count_messages(5, settings, clients) == 3


def test_function_reports_a_raw_state_event_too(deployment):
    settings, clients, _deployed = deployment
    response = clients.lambda_.invoke(FunctionName=settings.function_name,
                                      Payload=json.dumps(flight("3c6444", "Germany")).encode())
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    assert (result["published"], result["batchItemFailures"]) == (1, [])
