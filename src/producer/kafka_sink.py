"""Publishes state messages to Kafka: one message per aircraft state (JSON, or Protobuf named by its
content-type header), keyed by icao24.

Durable settings (acks=all, idempotence) so a broker failover neither loses nor duplicates a
position; every delivery failure is logged and counted, never dropped silently.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from pipeline_common.kafka_client import DEFAULT_TOPIC, BrokerUnavailable, KafkaSettings, connect_with_retry
from pipeline_common.state_codec import FORMATS, JSON, encode_state, record_headers

logger = logging.getLogger(__name__)

# lz4 needs the separate `lz4` package in kafka-python; gzip is in the standard library.
COMPRESSION = "gzip"
PRODUCER_CONFIG = dict(acks="all", enable_idempotence=True, compression_type=COMPRESSION,
                       linger_ms=20, batch_size=256 * 1024, max_in_flight_requests_per_connection=5)
# Log the first failures one by one, then one line per this many, so a dead broker cannot flood the log.
_FAILURE_LOG_EVERY = 1000
# How often (in sends) to notice that the topic gained partitions.
_PARTITION_RECHECK_EVERY = 10_000


class Sink(Protocol):
    """Where states go: Kafka, a CSV file, or a list in tests."""
    delivered: int
    failed: int

    def send(self, key: str, value: dict) -> None: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


def encode_value(value: dict, content_type: str = JSON) -> bytes:
    """The record value in the wire format ``content_type`` names (see pipeline_common.state_codec)."""
    return encode_state(value, content_type)


class KafkaSink:
    def __init__(self, topic: str = DEFAULT_TOPIC, settings: KafkaSettings | None = None, *,
                 value_format: str = "json", connect_timeout_s: float = 120.0,
                 stop_event: threading.Event | None = None,
                 retry_backoff_s: float = 1.0, producer_factory: Callable[..., KafkaProducer] = KafkaProducer,
                 **producer_overrides):
        self.topic = topic
        self.settings = settings or KafkaSettings.from_env()
        # A Protobuf record says so in its content-type header; JSON, the default, goes without (see
        # state_codec.record_headers), and consumers pick the decoder by the header.
        self.content_type = FORMATS[value_format]
        self._headers = record_headers(self.content_type) or None
        self._lock = threading.Lock()
        self._delivered = 0
        self._failed = 0
        self._partitions: list[int] = []
        self._partition_of: dict[bytes, int] = {}
        self._sends = 0
        self._producer = self._connect(producer_factory, connect_timeout_s, stop_event, retry_backoff_s,
                                       {**PRODUCER_CONFIG, **producer_overrides})

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def failed(self) -> int:
        return self._failed

    def _connect(self, factory, timeout_s, stop_event, delay, config) -> KafkaProducer:
        kwargs = {**self.settings.client_kwargs(), **config}
        producer = connect_with_retry(
            lambda bootstrap_s: factory(bootstrap_timeout_ms=int(bootstrap_s * 1000), **kwargs),
            self.settings, timeout_s=timeout_s, stop=stop_event, topic=self.topic, first_delay_s=delay)
        if producer is None:
            raise BrokerUnavailable("stopped while waiting for the Kafka broker")
        logger.info("connected to Kafka at %s (compression %s, acks=all, idempotent)",
                    self.settings.bootstrap_servers, COMPRESSION, extra={"topic": self.topic})
        return producer

    def send(self, key: str, value: dict) -> None:
        try:
            payload = encode_value(value, self.content_type)
        except (TypeError, ValueError) as exc:
            self._record_failure(key, None, f"cannot encode value: {exc}")
            return
        key_bytes = key.encode("utf-8")
        try:
            partition = self._partition(key_bytes)
            future = self._producer.send(self.topic, key=key_bytes, value=payload, partition=partition,
                                         headers=self._headers)
        except KafkaError as exc:  # buffer full for max_block_ms, or no metadata for the topic
            self._record_failure(key, None, f"{type(exc).__name__}: {exc}")
            return
        future.add_callback(self._on_delivered)
        future.add_errback(self._on_error, key)

    def _partition(self, key: bytes) -> int:
        """Same partition as Kafka's default (murmur2) partitioner, memoised per aircraft.

        kafka-python recomputes the pure-Python murmur2 hash and re-sorts the partition list on
        every send; a fleet has a fixed set of keys, and memoising saves ~20% of the send cost.
        """
        self._sends += 1
        if not self._partitions or self._sends % _PARTITION_RECHECK_EVERY == 0:
            partitions = sorted(self._producer.partitions_for(self.topic))
            if partitions != self._partitions:
                self._partitions, self._partition_of = partitions, {}
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
            self._partition_of[key] = partition
        return partition

    def _on_delivered(self, _metadata) -> None:
        with self._lock:
            self._delivered += 1

    def _on_error(self, key: str, exc: Exception) -> None:  # kafka-python passes bound args first
        self._record_failure(key, getattr(exc, "partition", None), f"{type(exc).__name__}: {exc}")

    def _record_failure(self, key: str, partition, reason: str) -> None:
        with self._lock:
            self._failed += 1
            count = self._failed
        if count <= 20 or count % _FAILURE_LOG_EVERY == 0:
            logger.error("delivery failed for key %s (%d failures so far): %s", key, count, reason,
                         extra={"topic": self.topic, "partition": partition})

    def flush(self, timeout: float | None = None) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            logger.warning("flush did not complete within %s s: %s", timeout, exc, extra={"topic": self.topic})

    def close(self, timeout: float | None = 30.0) -> None:
        self.flush(timeout)
        self._producer.close(timeout=timeout)
        logger.info("Kafka producer closed: %d delivered, %d failed", self._delivered, self._failed,
                    extra={"topic": self.topic})
