"""The mapping's consumer group: the stuck-rebalance safety net and the kafka-python workarounds.

Each workaround test has two halves: one shows kafka-python still behaves this way (when it stops,
the test fails and says to remove the workaround), the other fails if the workaround is removed.
"""
import logging
import threading
from concurrent.futures import Future

from kafka.consumer.fetcher import Fetcher
from kafka.consumer.subscription_state import SubscriptionState
from kafka.structs import MemberState, TopicPartition
from unittest.mock import MagicMock

from trigger.consumer_group import STUCK_REBALANCE_S, ConsumerGroup, release_parked_records
from trigger.mapping import TriggerConfig
from trigger.runner import Trigger, _InFlight


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


def _group(consumer):
    return ConsumerGroup(TriggerConfig(topic="t", dlq_topic=None), consumer)


# --- the stuck-rebalance safety net ----------------------------------------------------------------------

def test_a_stable_group_is_never_stuck():
    group = _group(_FakeConsumer(MemberState.STABLE))
    assert not group.rebalance_stuck(0.0, busy=False)
    assert not group.rebalance_stuck(10_000.0, busy=False)


def test_a_rebalance_longer_than_the_limit_is_stuck_only_with_nothing_in_flight():
    group = _group(_FakeConsumer(MemberState.REBALANCING))
    assert not group.rebalance_stuck(100.0, busy=False)  # starts the clock
    assert not group.rebalance_stuck(100.0 + STUCK_REBALANCE_S - 1, busy=False)
    assert group.rebalance_stuck(100.0 + STUCK_REBALANCE_S + 1, busy=False)
    # a batch still being invoked: never replace the consumer under it
    assert not group.rebalance_stuck(100.0 + STUCK_REBALANCE_S + 1, busy=True)


def test_finishing_the_rebalance_resets_the_clock():
    consumer = _FakeConsumer(MemberState.REBALANCING)
    group = _group(consumer)
    group.rebalance_stuck(0.0, busy=False)
    consumer._coordinator.state = MemberState.STABLE
    group.rebalance_stuck(1.0, busy=False)
    consumer._coordinator.state = MemberState.REBALANCING
    assert not group.rebalance_stuck(2.0, busy=False)
    assert not group.rebalance_stuck(2.0 + STUCK_REBALANCE_S - 1, busy=False)


def test_a_stuck_consumer_is_closed_and_replaced_by_a_subscribed_one(monkeypatch, caplog):
    stuck, fresh = _FakeConsumer(), _FakeConsumer(MemberState.UNJOINED)
    group = _group(stuck)
    monkeypatch.setattr(group, "make_consumer", lambda: fresh)
    with caplog.at_level(logging.ERROR):
        group.replace_consumer()
    assert group.consumer is fresh and stuck.closed
    assert fresh.subscribed == [["t"]]
    assert "has not finished rebalancing" in caplog.text


# --- workaround 1: parked records of a resumed partition (dpkp/kafka-python#2981) ------------------------

class _Exhausted:
    """An exhausted PartitionRecords: falsy, but not None."""
    topic_partition = TopicPartition("t", 9)

    def __bool__(self):
        return False


class _Parked:
    """PartitionRecords parked while its partition was paused, holding two records from offset 5."""

    def __init__(self, tp):
        self.topic_partition = tp
        self.next_fetch_offset = 5
        self._records = ["record-5", "record-6"]

    def __bool__(self):
        return bool(self._records)

    def take(self, n):
        taken, self._records = self._records[:n], self._records[n:]
        self.next_fetch_offset += len(taken)
        return taken


def _fetcher_with_parked_records():
    """kafka-python's real Fetcher after pause -> fetch -> resume: records parked, the in-line slot exhausted."""
    tp = TopicPartition("t", 0)
    subscriptions = SubscriptionState()
    subscriptions.assign_from_user([tp])
    subscriptions.seek(tp, 5)
    fetcher = Fetcher(MagicMock(), subscriptions)
    fetcher._paused_partition_records[tp] = _Parked(tp)
    fetcher._next_partition_records = _Exhausted()
    return fetcher, tp


def test_kafka_python_still_strands_parked_records_of_a_resumed_partition():
    # GIVEN a resumed partition whose fetched records were parked while it was paused
    fetcher, tp = _fetcher_with_parked_records()
    # WHEN the consumer polls without the workaround
    drained, _ = fetcher.fetched_records()
    # THEN (kafka-python 3.0.12) nothing comes back, poll after poll: the partition is stalled for good.
    # If this fails, kafka-python fixed it: remove consumer_group.release_parked_records.
    assert drained == {} and fetcher.fetched_records()[0] == {}
    assert tp in fetcher._paused_partition_records


def test_releasing_the_exhausted_slot_before_polling_returns_the_parked_records():
    fetcher, tp = _fetcher_with_parked_records()
    release_parked_records(MagicMock(_fetcher=fetcher))
    drained, _ = fetcher.fetched_records()
    assert drained == {tp: ["record-5", "record-6"]}


# --- orphans: batches of partitions lost to a rebalance ----------------------------------------------------

def test_an_orphaned_batch_that_finished_is_not_reported_as_left_uncommitted(caplog):
    # GIVEN a batch orphaned by an earlier rebalance, which finished long ago, and one still running
    trigger = Trigger(TriggerConfig(topic="t", dlq_topic=None), invoker=lambda payload: None, destinations=[],
                      consumer=_FakeConsumer(MemberState.STABLE))
    done, running = Future(), Future()
    done.set_result(None)
    trigger._orphans = [_InFlight(done, threading.Event(), 10, 19), _InFlight(running, threading.Event(), 40, 49)]
    trigger._group.consumer.commit = lambda offsets: None
    # WHEN the loop reaps
    trigger._reap()
    # THEN only the running one is still tracked ...
    assert [o.first for o in trigger._orphans] == [40]
    # ... and shutdown lists only that one as left uncommitted
    running.set_result(None)
    trigger._orphans.append(_InFlight(Future(), threading.Event(), 70, 79))
    from concurrent.futures import ThreadPoolExecutor
    with caplog.at_level(logging.WARNING):
        trigger._shutdown(ThreadPoolExecutor(1))
    left = [r for r in caplog.records if "left uncommitted" in r.getMessage()]
    assert [r.offset for r in left] == [70]
