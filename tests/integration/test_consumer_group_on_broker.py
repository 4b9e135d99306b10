"""Workaround 2 of trigger/consumer_group.py on the real broker: kafka-python 3.x runs the rebalance listener
on its IO thread and refuses blocking consumer calls there (dpkp/kafka-python#2968), so the group only
records assignments in the listener and resolves the starting position after poll() returns."""
from __future__ import annotations

import time
import uuid

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer

from test_trigger_esm import _drop_topics_afterwards, flights, new_topic, produce  # noqa: F401
from trigger.consumer_group import ConsumerGroup
from trigger.mapping import TriggerConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_kafka_python_still_refuses_blocking_calls_inside_a_rebalance_listener(stack):
    topic, _ = new_topic(stack, partitions=2)
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=f"it-probe-{uuid.uuid4().hex[:6]}",
                             enable_auto_commit=False)
    seen = {}

    class Blocking(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            if not assigned:  # a first, empty assignment (topic metadata not there yet) calls nothing
                return
            try:
                seen["committed"] = {tp: consumer.committed(tp) for tp in assigned}
            except RuntimeError as exc:
                seen["error"] = str(exc)

    consumer.subscribe([topic], listener=Blocking())
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
    consumer.close()
    # If this fails, kafka-python allows blocking calls in listeners again: the deferral may go.
    assert "Cannot block" in seen.get("error", ""), seen


def test_the_group_resolves_and_commits_its_start_after_poll_returns(stack):
    # GIVEN a topic with records and a new group
    topic, _ = new_topic(stack, partitions=2)
    produce(stack, topic, flights(10))
    config = TriggerConfig.from_env(topic=topic, group_id=f"it-group-{uuid.uuid4().hex[:6]}", dlq_topic="none")
    group = ConsumerGroup(config)
    consumer = group.start(stop=__import__("threading").Event())
    # WHEN the loop polls and takes the rebalance
    change, deadline = None, time.monotonic() + 30
    while change is None and time.monotonic() < deadline:
        change = group.take_rebalance(consumer.poll(timeout_ms=200), {})
    # THEN every partition starts at TRIM_HORIZON and that start is already committed
    try:
        assert change is not None and sorted(change.gained.values()) == [0, 0]
        assert all(consumer.committed(tp) == 0 for tp in change.gained)
    finally:
        consumer.close()
