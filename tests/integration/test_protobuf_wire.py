"""PRODUCER_FORMAT=protobuf end to end: the real producer writes the same synthetic states once as JSON and
once as Protobuf through the real broker, the trigger hands each topic to the deployed flight-processor
(the real zip, with its own Protobuf runtime), and the subscriber receives the very same notifications."""
from __future__ import annotations

import json
import uuid

import pytest

from infra.demo import observe

from infra.deploy import aws_resources
from infra.deploy.aws_resources import AwsClients, AwsResourceSettings
from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.state_codec import CONTENT_TYPE_HEADER, FORMATS, PROTOBUF, encode_state
from producer.runner import SimulatedClock, run_producer
from producer.settings import ProducerConfig
from producer.synthetic import COUNTRIES
from test_trigger_esm import _drop_topics_afterwards, new_topic  # noqa: F401 - deletes the topics
from trigger import Trigger, TriggerConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

START = 1_764_547_200.0  # a fixed simulated start: both runs produce identical states


@pytest.fixture
def deployment(stack):
    suffix = uuid.uuid4().hex[:8]
    settings = AwsResourceSettings.from_env(
        {}, topic_name=f"FlightNotifications-pb-{suffix}", function_name=f"flight-processor-pb-{suffix}",
        queue_name=f"flight-notifications-pb-{suffix}", notify_countries=tuple(c[0] for c in COUNTRIES))
    clients = AwsClients()
    try:
        yield settings, clients, aws_resources.deploy_resources(settings, clients, say=lambda _m: None)
    finally:
        aws_resources.destroy(settings, clients, say=lambda _m: None)


@pytest.fixture
def topics(stack):
    """new() -> a fresh (topic, dead-letter topic) pair, deleted after this module (test_trigger_esm's)."""
    return lambda partitions=3: new_topic(stack, partitions)


def produce_and_deliver(value_format: str, topics, settings, clients, extra=()) -> dict:
    """One run: the producer writes the fleet in this format, the trigger delivers it, the subscriber reads."""
    topic, dlq = topics()
    kafka = KafkaSettings.from_env()
    stats = run_producer(ProducerConfig.from_env(source="synthetic", aircraft=150, seed=21, max_ticks=1,
                                                 start_time=START, topic=topic, value_format=value_format),
                         clock=SimulatedClock(START))
    assert stats.published == 150 and stats.failed == 0
    if extra:
        from kafka import KafkaProducer
        producer = KafkaProducer(**kafka.client_kwargs(), acks="all")
        for key, value, headers in extra:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
        producer.close()
    records = list(observe.read_topic(kafka, topic))
    expected = observe.recount(records)
    trigger_stats = Trigger(TriggerConfig.from_env(
        topic=topic, dlq_topic=dlq, function_name=settings.function_name, group_id=f"it-pb-{uuid.uuid4().hex[:8]}",
        maximum_batching_window_s=0.2, maximum_retry_attempts=1, retry_base_delay_s=0.05, retry_max_delay_s=0.2,
        status_interval_s=2)).run(until_idle_s=3, duration=150)
    lines: list[str] = []
    want = expected.expected_at(settings.notify_countries)
    observe.notifications(max_messages=want, seconds=90, settings=settings, clients=clients,
                          on_message=lines.append, say=lambda _m: None)
    dead = [json.loads(r.value) for r in observe.read_topic(kafka, dlq)]
    return {"records": records, "expected": expected, "want": want, "notifications": lines,
            "trigger": trigger_stats, "dead": dead}


def test_protobuf_records_reach_the_deployed_function_and_give_the_same_notifications_as_json(
        stack, deployment, topics):
    settings, clients, _deployed = deployment
    # GIVEN the same 150 synthetic aircraft produced once as JSON ...
    as_json = produce_and_deliver("json", topics, settings, clients)
    # ... and once as Protobuf, plus one Protobuf record cut off inside its icao24
    broken = encode_state({"icao24": "3c6444", "origin_country": "Germany", "last_contact": 1}, PROTOBUF)[:5]
    as_proto = produce_and_deliver("protobuf", topics, settings, clients,
                                   extra=[(b"3c6444", broken, [(CONTENT_TYPE_HEADER, PROTOBUF.encode())])])

    # THEN every Protobuf record named its format in its content-type header, JSON ones (the default) carried
    # none, and Protobuf is the smaller one
    assert all(not r.headers for r in as_json["records"][:150])
    produced = [r for r in as_proto["records"] if r.key != b"3c6444" or r.value != broken]
    assert {dict(r.headers)[CONTENT_TYPE_HEADER] for r in produced} == {FORMATS["protobuf"].encode()}
    json_bytes = sum(len(r.value) for r in as_json["records"])
    proto_bytes = sum(len(r.value) for r in as_proto["records"] if r.value != broken)
    assert proto_bytes < 0.6 * json_bytes

    # AND the subscriber received exactly the same notifications from both, as many as the recount says
    assert as_json["want"] == as_proto["want"] > 50
    assert sorted(as_json["notifications"]) == sorted(as_proto["notifications"])
    assert len(as_proto["notifications"]) == as_proto["want"]
    assert observe.notifications(seconds=2, settings=settings, clients=clients, say=lambda _m: None) == 0

    # AND the malformed Protobuf record was a batch item failure, dead-lettered with its reason
    assert as_json["trigger"].dead_lettered == 0 and as_proto["trigger"].dead_lettered == 1
    [dead] = as_proto["dead"]
    assert "not a valid flightpipe.OpenSkyState Protobuf message" in json.dumps(dead)
