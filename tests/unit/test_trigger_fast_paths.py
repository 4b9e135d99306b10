"""The trigger's hot-path shortcuts (made for the benchmarks) give exactly the bytes and sizes of the general code."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from trigger.batching import PartitionBuffer
from trigger.esm_event import EsmEventBuilder

opt_bytes = st.one_of(st.none(), st.binary(max_size=300))
records_of_one_partition = st.lists(
    st.tuples(st.integers(0, 2**40), st.integers(-1, 2**41), st.sampled_from([0, 1, 7]), opt_bytes, opt_bytes,
              st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=4)), max_size=2)),
    min_size=1, max_size=12)


def _records(topic: str, partition: int, rows) -> list[ConsumerRecord]:
    return [ConsumerRecord(topic, partition, -1, o, ts, tt, k, v, list(h), None, -1, -1, -1)
            for o, ts, tt, k, v, h in rows]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["aviation-data", "ü-topic"]), st.integers(0, 120), records_of_one_partition)
def test_sizes_in_one_pass_equal_each_records_own_size(topic, partition, rows):
    builder = EsmEventBuilder("b-1:9092")
    recs = _records(topic, partition, rows)
    assert builder.record_sizes(topic, partition, recs) == [builder.record_size(r) for r in recs]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["aviation-data", "ü-topic"]), st.integers(0, 120), records_of_one_partition)
def test_built_event_is_byte_for_byte_the_record_by_record_writer(topic, partition, rows):
    # GIVEN records with and without keys, values (tombstones), headers and known timestamp types
    builder = EsmEventBuilder("b-1:9092,b-2:9092")
    recs = _records(topic, partition, rows)
    # WHEN the event is built with the one-format-per-record path
    built = bytes(builder.build(recs))
    # THEN it is exactly the concatenation the general per-record writer produces
    expected = bytearray(builder._head)
    expected += b'"%s-%d":[' % (topic.encode(), partition)
    expected += b",".join(builder.record_json(r) for r in recs)
    expected += b"]" + builder._tail
    assert built == bytes(expected)


def test_buffer_cuts_at_the_payload_limit_with_the_one_pass_sizes():
    # GIVEN 50 records of ~1 KB in one partition's buffer
    builder = EsmEventBuilder("b-1:9092")
    recs = _records("aviation-data", 3, [(i, 1_700_000_000_000, 0, b"3c6444", b"x" * 1000, []) for i in range(50)])
    buf = PartitionBuffer("aviation-data", 3, builder)
    buf.add(recs, now=0.0)
    # WHEN a batch is cut with a 20,000-byte payload limit
    batch = buf.take(batch_size=100, max_payload=20_000)
    # THEN the event of that batch fits, and one more record would not have
    assert len(builder.build(batch)) <= 20_000 < len(builder.build(recs[:len(batch) + 1]))
    assert len(buf) == 50 - len(batch)


class _PausingConsumer:
    def __init__(self):
        self.paused = set()

    def pause(self, *tps):
        self.paused.update(tps)

    def resume(self, *tps):
        self.paused.difference_update(tps)


def test_buffers_together_are_bounded_by_a_few_full_payloads():
    # GIVEN a trigger with 10,000-record batches and a 100 KB payload limit, and 6 partitions' buffers
    from kafka import TopicPartition

    from trigger.mapping import TriggerConfig
    from trigger.runner import _BUFFERED_PAYLOADS, Trigger

    trigger = Trigger(TriggerConfig(topic="t", dlq_topic=None, batch_size=10_000, max_payload_bytes=100_000),
                      invoker=lambda payload: None, destinations=[], consumer=_PausingConsumer())
    builder = EsmEventBuilder("b-1:9092")
    tps = [TopicPartition("t", p) for p in range(6)]
    for tp in tps:
        trigger._buffers[tp] = PartitionBuffer("t", tp.partition, builder)

    def fill(tp, n):
        trigger._buffers[tp].add(_records("t", tp.partition, [(i, 1, 0, b"k", b"x" * 1000, []) for i in range(n)]),
                                 now=0.0)

    # WHEN five partitions each hold less than a full batch (and payload), but together more than the budget
    for tp in tps[:5]:
        fill(tp, 60)
    held = [trigger._buffers[tp].bytes for tp in tps[:5]]
    assert max(held) < 100_000 and sum(held) >= _BUFFERED_PAYLOADS * 100_000
    trigger._flow_control()
    # THEN every partition with records waiting is paused, the empty one keeps fetching
    assert trigger._consumer.paused == set(tps[:5])

    # AND once a batch leaves (dispatched), the budget frees up and the partitions resume
    for tp in tps[:3]:
        trigger._buffers[tp].take(10_000, 100_000)
    trigger._flow_control()
    assert trigger._consumer.paused == set()


def test_a_small_batch_configuration_is_paused_only_by_its_own_full_batch():
    from kafka import TopicPartition

    from trigger.mapping import TriggerConfig
    from trigger.runner import Trigger

    trigger = Trigger(TriggerConfig(topic="t", dlq_topic=None, batch_size=100),
                      invoker=lambda payload: None, destinations=[], consumer=_PausingConsumer())
    builder = EsmEventBuilder("b-1:9092")
    full, partial = TopicPartition("t", 0), TopicPartition("t", 1)
    for tp, n in ((full, 100), (partial, 99)):
        trigger._buffers[tp] = PartitionBuffer("t", tp.partition, builder)
        trigger._buffers[tp].add(_records("t", tp.partition, [(i, 1, 0, b"k", b"v" * 400, []) for i in range(n)]),
                                 now=0.0)
    trigger._flow_control()
    assert trigger._consumer.paused == {full}


def test_remembered_header_json_is_exactly_each_records_own_even_past_the_cache_bound():
    # GIVEN records that all carry the producer's content-type header, records with a header of their
    # own each (more distinct ones than the builder remembers), and one whose header value is a bytearray
    from trigger import esm_event
    builder = EsmEventBuilder("b-1:9092")
    same = [("content-type", b"application/json")]
    rows = [(i, 1, 0, b"k", b"{}", same) for i in range(5)]
    rows += [(5 + i, 1, 0, b"k", b"{}", [("trace-id", str(i).encode())]) for i in range(esm_event._HEADER_CACHE_MAX + 10)]
    recs = _records("aviation-data", 0, rows)
    recs.append(ConsumerRecord("aviation-data", 0, -1, 10**6, 1, 0, b"k", b"{}", [("h", bytearray(b"x"))],
                               None, -1, -1, -1))
    # WHEN sizes and the event are computed twice (the second time from what was remembered)
    for _ in range(2):
        sizes = builder.record_sizes("aviation-data", 0, recs)
        event = builder.build_dict(recs)["records"]["aviation-data-0"]
        # THEN every record's headers are its own, and every size is what the uncached writer gives
        assert [r["headers"] for r in event] == [
            [{name: list(value)} for name, value in rec.headers] for rec in recs]
        assert sizes == [len(esm_event.EsmEventBuilder("b-1:9092").record_json(r)) for r in recs]
    assert len(builder._headers) <= esm_event._HEADER_CACHE_MAX
