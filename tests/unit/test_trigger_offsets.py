"""Offset commits: never ahead of a record that is not fully handled (at least once, nothing skipped)."""
from __future__ import annotations

import pytest
from kafka.structs import TopicPartition

from trigger.offsets import OffsetTracker

P0, P1 = TopicPartition("aviation-data", 0), TopicPartition("aviation-data", 1)


def tracker(**committed):
    t = OffsetTracker()
    t.assign(P0, committed.get("p0"))
    t.assign(P1, committed.get("p1"))
    return t


def test_nothing_is_committable_while_the_batch_is_in_flight():
    t = tracker(p0=100)
    t.dispatched(P0, 100, 199)
    assert t.to_commit() == {}


def test_a_handled_batch_commits_its_last_offset_plus_one():
    t = tracker(p0=100)
    t.dispatched(P0, 100, 199)
    t.completed(P0, 199)
    assert t.to_commit() == {P0: 200}
    t.mark_committed({P0: 200})
    assert t.to_commit() == {} and t.committed(P0) == 200


def test_an_aborted_batch_commits_nothing_so_its_records_are_read_again():
    t = tracker(p0=100)
    t.dispatched(P0, 100, 199)
    t.aborted(P0)
    assert t.to_commit() == {} and not t.in_flight(P0)


def test_partitions_commit_independently():
    t = tracker(p0=0, p1=50)
    t.dispatched(P0, 0, 9)
    t.dispatched(P1, 50, 59)
    t.completed(P1, 59)
    assert t.to_commit() == {P1: 60}


def test_one_batch_in_flight_per_partition():
    t = tracker()
    t.dispatched(P0, 0, 9)
    with pytest.raises(RuntimeError):
        t.dispatched(P0, 10, 19)


def test_a_completion_that_is_not_the_batch_in_flight_is_refused():
    t = tracker()
    t.dispatched(P0, 0, 9)
    with pytest.raises(RuntimeError):
        t.completed(P0, 5)


def test_a_revoked_partition_is_forgotten_and_a_late_completion_ignored():
    t = tracker(p0=0)
    t.dispatched(P0, 0, 9)
    t.revoke(P0)
    t.completed(P0, 9)
    assert t.to_commit() == {} and t.assigned() == [P1]


def test_a_new_group_without_committed_offsets_commits_after_its_first_batch():
    t = tracker()
    t.dispatched(P0, 0, 4)
    t.completed(P0, 4)
    assert t.to_commit() == {P0: 5}
