"""Batches are cut as AWS cuts them: BatchSize, the 6 MB payload, or the batching window, first wins."""
from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from trigger.batching import PartitionBuffer
from trigger.esm_event import EsmEventBuilder

BUILDER = EsmEventBuilder("localhost:9092")


def recs(n, start=0, size=100):
    value = b"v" * size
    return [ConsumerRecord("aviation-data", 3, -1, start + i, 1_700_000_000_000, 0, b"3c6444", value, [],
                           None, 6, size, -1) for i in range(n)]


def buffer(records=(), now=0.0):
    buf = PartitionBuffer("aviation-data", 3, BUILDER)
    buf.add(list(records), now)
    return buf


def test_batch_size_reached_makes_a_batch_at_once():
    buf = buffer(recs(250))
    assert buf.ready(batch_size=100, window_s=0.5, max_payload=6 * 2**20, now=0.0)
    first = buf.take(100, 6 * 2**20)
    assert [r.offset for r in first] == list(range(100)) and len(buf) == 150


def test_a_partial_batch_waits_for_the_window_then_goes():
    buf = buffer(recs(10), now=100.0)
    assert not buf.ready(100, 0.5, 6 * 2**20, now=100.4)
    assert buf.ready(100, 0.5, 6 * 2**20, now=100.5)
    assert len(buf.take(100, 6 * 2**20)) == 10 and len(buf) == 0 and buf.first_arrival is None


def test_window_zero_sends_whatever_is_there():
    assert buffer(recs(1), now=5.0).ready(100, 0.0, 6 * 2**20, now=5.0)


def test_the_window_starts_with_the_first_record_not_the_latest():
    buf = buffer(recs(5), now=10.0)
    buf.add(recs(5, start=5), now=10.4)
    assert buf.ready(100, 0.5, 6 * 2**20, now=10.5)


def test_the_payload_limit_cuts_the_batch_and_the_event_fits():
    limit = 64 * 1024
    buf = buffer(recs(1000, size=1000))
    assert buf.ready(10_000, 300, limit, now=0.0)
    batch = buf.take(10_000, limit)
    event = BUILDER.build(batch)
    assert len(event) <= limit
    assert len(BUILDER.build(batch + buf.take(1, limit))) > limit  # one more would not have fitted


def test_a_record_larger_than_the_limit_goes_alone():
    buf = buffer(recs(1, size=10_000) + recs(2, start=1))
    assert [r.offset for r in buf.take(100, 4096)] == [0]
    assert [r.offset for r in buf.take(100, 4096)] == [1, 2]


def test_bytes_accounting_returns_to_zero():
    buf = buffer(recs(30))
    while len(buf):
        buf.take(7, 6 * 2**20)
    assert buf.bytes == 0


# --- FilterCriteria: dropped records never reach a batch but are committed with it ------------------------

def keep_even(value):
    return value == b"even"


def mixed(n, start=0):
    return [ConsumerRecord("aviation-data", 3, -1, start + i, 1_700_000_000_000, 0, None,
                           b"even" if (start + i) % 2 == 0 else b"odd", [], None, 6, 4, -1) for i in range(n)]


def test_dropped_records_are_not_batched_but_the_batch_accounts_for_them():
    buf = PartitionBuffer("aviation-data", 3, BUILDER)
    # GIVEN offsets 0..9 where only the even ones match
    assert buf.add_matching(mixed(10), keep_even, 0.0) == (5, 5)
    # WHEN a batch of 3 is cut, THEN it holds 0, 2, 4 and accounts up to 5 (the record before the next kept one)
    assert [r.offset for r in buf.take(3, 6_000_000)] == [0, 2, 4] and buf.taken_through == 5
    # AND the last batch accounts for the trailing dropped record 9
    assert [r.offset for r in buf.take(3, 6_000_000)] == [6, 8] and buf.taken_through == 9
    assert buf.filtered_upto is None and buf.next_offset == 10


def test_a_poll_of_only_dropped_records_marks_them_handled_without_a_batch():
    from trigger.offsets import OffsetTracker

    buf, tracker = PartitionBuffer("aviation-data", 3, BUILDER), OffsetTracker()
    tracker.assign("tp", 0)
    assert buf.add_matching(mixed(3, start=1)[::2], keep_even, 0.0) == (0, 2)  # offsets 1 and 3, both odd
    assert len(buf) == 0 and buf.filtered_upto == 4
    tracker.skipped("tp", buf.filtered_upto)
    assert tracker.to_commit() == {"tp": 4}


def test_dropped_records_wait_for_a_batch_in_flight_before_being_committed():
    from trigger.offsets import OffsetTracker

    tracker = OffsetTracker()
    tracker.assign("tp", 0)
    tracker.dispatched("tp", 0, 4)
    tracker.skipped("tp", 9)  # records 5..8 dropped while 0..4 are still being invoked
    assert tracker.to_commit() == {}
    tracker.completed("tp", 4)
    tracker.skipped("tp", 9)
    assert tracker.to_commit() == {"tp": 9}
