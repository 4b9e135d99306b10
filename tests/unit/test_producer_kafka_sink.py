"""KafkaSink without a broker: producer settings, message encoding, delivery accounting, start-up retries."""
from __future__ import annotations

import json
import logging

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

from pipeline_common.kafka_client import KafkaSettings
from producer.kafka_sink import BrokerUnavailable, KafkaSink


class FakeFuture:
    def __init__(self):
        self.callbacks, self.errbacks = [], []

    def add_callback(self, fn, *args):
        self.callbacks.append((fn, args))
        return self

    def add_errback(self, fn, *args):
        self.errbacks.append((fn, args))
        return self

    def succeed(self):
        for fn, args in self.callbacks:
            fn(*args, "metadata")

    def fail(self, exc):
        for fn, args in self.errbacks:
            fn(*args, exc)


class FakeProducer:
    def __init__(self, **config):
        self.config = config
        self.sent: list[tuple[str, bytes, bytes, FakeFuture]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []
        self.partitions_used: list[int | None] = []
        self.flushed = self.closed = False

    def send(self, topic, key=None, value=None, partition=None, headers=None):
        future = FakeFuture()
        self.sent.append((topic, key, value, future))
        self.headers.append(headers)
        self.partitions_used.append(partition)
        return future

    def partitions_for(self, topic):
        return {2, 0, 1, 5, 4, 3}

    def flush(self, timeout=None):
        self.flushed = True

    def close(self, timeout=None):
        self.closed = True


def factory_failing(times: int, made: list):
    def factory(**config):
        if len(made) < times:
            made.append(None)
            raise KafkaTimeoutError("Unable to bootstrap from ['localhost:1']")
        producer = FakeProducer(**config)
        made.append(producer)
        return producer
    return factory


SETTINGS = KafkaSettings(bootstrap_servers="localhost:9092")


def make_sink(**kw) -> tuple[KafkaSink, FakeProducer]:
    made: list = []
    sink = KafkaSink("aviation-data", SETTINGS, producer_factory=factory_failing(0, made), **kw)
    return sink, made[-1]


def test_producer_is_durable_compressed_and_batched():
    _sink, producer = make_sink()
    c = producer.config
    assert c["acks"] == "all" and c["enable_idempotence"] is True
    assert c["compression_type"] == "gzip"  # lz4 would need the extra `lz4` package
    assert c["linger_ms"] == 20 and c["batch_size"] == 256 * 1024
    assert c["bootstrap_servers"] == ["localhost:9092"]


def test_one_message_per_state_keyed_by_icao24_with_compact_utf8_json():
    sink, producer = make_sink()
    state = {"icao24": "3c6444", "callsign": "DLH9LF", "origin_country": "Côte d'Ivoire", "on_ground": False}
    sink.send("3c6444", state)
    topic, key, value, _ = producer.sent[0]
    assert topic == "aviation-data" and key == b"3c6444"
    assert json.loads(value.decode("utf-8")) == state
    assert "Côte".encode() in value  # UTF-8, not \u escapes
    assert value.startswith(b'{"icao24":"3c6444","callsign":"DLH9LF",')  # compact separators
    assert not producer.headers[0]  # JSON, the default, carries no header: no header means JSON


def test_protobuf_format_sends_protobuf_values_named_by_their_content_type_header():
    from pipeline_common.state_codec import PROTOBUF, decode_state

    sink, producer = make_sink(value_format="protobuf")
    state = {"icao24": "3c6444", "callsign": None, "origin_country": "Germany", "last_contact": 1722515697,
             "on_ground": False, "category": 6}
    sink.send("3c6444", state)
    _topic, key, value, _ = producer.sent[0]
    assert producer.headers[0] == [("content-type", PROTOBUF.encode())]
    decoded = decode_state(value, PROTOBUF)
    assert key == b"3c6444" and decoded["category"] == 6 and decoded["callsign"] is None


def test_keys_go_to_the_partition_kafkas_default_partitioner_would_choose():
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:
        def topics(self):
            return {"aviation-data"}

        def partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4, 5}

        available_partitions_for_topic = partitions_for_topic

    sink, producer = make_sink()
    keys = [f"{i:06x}" for i in range(0, 0xFFFFFF, 0x3FFFF)]
    for key in keys + keys:
        sink.send(key, {"icao24": key})
    expected = [DefaultPartitioner().partition("aviation-data", k, k.encode(), None, None, Cluster()) for k in keys]
    assert producer.partitions_used == expected + expected
    assert len(set(expected)) == 6


def test_acknowledged_and_failed_deliveries_are_counted_and_failures_logged(caplog):
    sink, producer = make_sink()
    for i in range(3):
        sink.send(f"00000{i}", {"icao24": f"00000{i}"})
    producer.sent[0][3].succeed()
    producer.sent[1][3].succeed()
    producer.sent[2][3].fail(NotLeaderForPartitionError("leader moved"))
    assert (sink.delivered, sink.failed) == (2, 1)
    record = next(r for r in caplog.records if "delivery failed" in r.getMessage())
    assert record.levelno == logging.ERROR and record.topic == "aviation-data" and "000002" in record.getMessage()


def test_a_value_that_is_not_json_is_counted_as_failed_not_sent():
    sink, producer = make_sink()
    sink.send("3c6444", {"icao24": "3c6444", "baro_altitude": float("nan")})
    assert producer.sent == [] and sink.failed == 1


def test_close_flushes_before_closing():
    sink, producer = make_sink()
    sink.close()
    assert producer.flushed and producer.closed


def test_broker_down_at_start_is_retried_with_a_clear_log_line(caplog):
    made: list = []
    sink = KafkaSink("aviation-data", SETTINGS, retry_backoff_s=0.01, connect_timeout_s=10,
                     producer_factory=factory_failing(2, made))
    assert isinstance(made[-1], FakeProducer) and len(made) == 3
    lines = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(lines) == 2 and "localhost:9092" in lines[0] and "retrying in" in lines[0]
    sink.close()


def test_broker_that_never_comes_up_is_a_clear_error_not_a_traceback():
    with pytest.raises(BrokerUnavailable, match=r"localhost:9092 is not reachable .*make run"):
        KafkaSink("aviation-data", SETTINGS, retry_backoff_s=0.01, connect_timeout_s=0.05,
                  producer_factory=factory_failing(1000, []))


def test_cli_with_no_broker_retries_then_exits_with_a_clear_message(monkeypatch, capsys):
    from producer.__main__ import main

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setenv("LOG_FORMAT", "console")
    code = main(["--source", "synthetic", "--aircraft", "10", "--max-ticks", "1", "--connect-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Kafka broker at 127.0.0.1:1 not reachable" in err and "retrying in" in err
    assert "is not reachable after" in err and "Traceback" not in err
