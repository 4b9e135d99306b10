"""Producer sinks for unit tests (producer.kafka_sink.Sink): one that counts, one that keeps each message."""
from __future__ import annotations


class CountingSink:
    """Counts what would have been published (long simulated runs keep nothing)."""

    def __init__(self):
        self.delivered = self.failed = 0

    def send(self, key, value):
        self.delivered += 1

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


class ListSink(CountingSink):
    """Keeps what would have been published: `messages` is [(key, value)], `values` the values alone."""

    def __init__(self):
        super().__init__()
        self.messages: list[tuple[str, dict]] = []

    def send(self, key, value):
        self.messages.append((key, value))
        self.delivered += 1

    @property
    def values(self) -> list[dict]:
        return [value for _key, value in self.messages]
