"""The trigger's safety net for a consumer-group join that kafka-python never completes."""
import logging

from kafka.structs import MemberState

from trigger.mapping import TriggerConfig
from trigger.runner import _STUCK_REBALANCE_S, Trigger


class _Coordinator:
    def __init__(self, state):
        self.state = state


class _FakeConsumer:
    def __init__(self, state=MemberState.REBALANCING):
        self._coordinator = _Coordinator(state)
        self.closed = False
        self.subscribed = []

    def subscribe(self, topics, listener=None):
        self.subscribed.append(list(topics))

    def close(self, autocommit=True):
        self.closed = True


def _trigger():
    return Trigger(TriggerConfig(topic="t", dlq_topic=None), invoker=lambda payload: None, destinations=[])


def test_a_stable_group_is_never_stuck():
    trigger, consumer = _trigger(), _FakeConsumer(MemberState.STABLE)
    assert not trigger._rebalance_stuck(consumer, 0.0)
    assert not trigger._rebalance_stuck(consumer, 10_000.0)


def test_a_rebalance_longer_than_the_limit_is_stuck_only_with_nothing_in_flight():
    trigger, consumer = _trigger(), _FakeConsumer(MemberState.REBALANCING)
    assert not trigger._rebalance_stuck(consumer, 100.0)  # starts the clock
    assert not trigger._rebalance_stuck(consumer, 100.0 + _STUCK_REBALANCE_S - 1)
    assert trigger._rebalance_stuck(consumer, 100.0 + _STUCK_REBALANCE_S + 1)
    trigger._inflight["tp"] = object()  # a batch still being invoked: never replace under it
    assert not trigger._rebalance_stuck(consumer, 100.0 + _STUCK_REBALANCE_S + 1)


def test_finishing_the_rebalance_resets_the_clock():
    trigger, consumer = _trigger(), _FakeConsumer(MemberState.REBALANCING)
    trigger._rebalance_stuck(consumer, 0.0)
    consumer._coordinator.state = MemberState.STABLE
    trigger._rebalance_stuck(consumer, 1.0)
    consumer._coordinator.state = MemberState.REBALANCING
    assert not trigger._rebalance_stuck(consumer, 2.0)
    assert not trigger._rebalance_stuck(consumer, 2.0 + _STUCK_REBALANCE_S - 1)


def test_a_stuck_consumer_is_closed_and_replaced_by_a_subscribed_one(monkeypatch, caplog):
    trigger, stuck = _trigger(), _FakeConsumer()
    fresh = _FakeConsumer(MemberState.UNJOINED)
    monkeypatch.setattr(trigger, "_make_consumer", lambda: fresh)
    with caplog.at_level(logging.ERROR):
        replacement = trigger._replace_consumer(stuck)
    assert replacement is fresh and trigger._consumer is fresh
    assert stuck.closed
    assert fresh.subscribed == [["t"]]
    assert "has not finished rebalancing" in caplog.text
