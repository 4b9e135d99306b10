"""Builds the event AWS Lambda's Kafka event source mapping sends, as JSON bytes, from kafka-python records.

Shape (AWS docs, "self-managed Apache Kafka" / "Amazon MSK" example events):
    {"eventSource": "SelfManagedKafka" | "aws:kafka", "eventSourceArn": <MSK only>,
     "bootstrapServers": "host:port,host:port",
     "records": {"<topic>-<partition>": [{"topic", "partition", "offset", "timestamp",
                 "timestampType", "key": b64, "value": b64, "headers": [{"name": [byte, ...]}]}]}}
A record whose key is null has no "key" field, and a tombstone (null value) has no "value" field:
AWS omits both rather than sending null (Powertools had to learn the same for tombstones,
aws-powertools/powertools-lambda-typescript#5016). The docs do not say what a header with a
null value looks like; it is sent as an empty byte list.

The bytes are assembled directly (one b64encode per key/value, no per-record dicts, no
json.dumps of the batch, no per-record fragments) because the trigger has to move tens of thousands of records a
second; `record_size` predicts each record's share exactly so a batch can be cut at 6 MB
without building it twice.
"""
from __future__ import annotations

import json
import logging
from base64 import b64encode
from binascii import b2a_base64
from typing import Iterable, Sequence

logger = logging.getLogger(__name__)

TIMESTAMP_TYPES = {0: b"CREATE_TIME", 1: b"LOG_APPEND_TIME"}
NO_TIMESTAMP_TYPE = b"NO_TIMESTAMP_TYPE"

# Everything in a record's JSON except the variable parts: topic (already JSON-quoted),
# partition/offset/timestamp digits, timestampType, key/value fields and headers.
_RECORD_HEAD = b'{"topic":%s,"partition":%d,"offset":%d,"timestamp":%d,"timestampType":"%s"'
_FIXED = len(b'{"topic":,"partition":,"offset":,"timestamp":,"timestampType":"","headers":}')
_KEY_FIXED = len(b',"key":""')
_VALUE_FIXED = len(b',"value":""')
# The usual record (key and value present): the whole record in one formatting operation.
_RECORD_FULL = _RECORD_HEAD + b',"key":"%s","value":"%s","headers":%s}'
_TIMESTAMP_TYPE_LEN = {k: len(v) for k, v in TIMESTAMP_TYPES.items()}
# Distinct header lists remembered with their JSON. Producers label their records the same way (none
# for JSON, one content-type header for Protobuf), so this holds a handful; the bound only stops a
# producer that puts a unique value in every record's header (a trace id) from growing it without end.
_HEADER_CACHE_MAX = 1024


def _b64len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def _quoted(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def _headers_json(headers) -> bytes:
    if not headers:
        return b"[]"
    parts = []
    for name, value in headers:
        values = ",".join(map(str, value)) if value else ""
        parts.append(b"{%s:[%s]}" % (_quoted(name), values.encode("ascii")))
    return b"[" + b",".join(parts) + b"]"


class EsmEventBuilder:
    """Turns ConsumerRecords into the ESM event; one instance per trigger (topic names are cached)."""

    def __init__(self, bootstrap_servers: str | Sequence[str], event_source: str = "SelfManagedKafka",
                 event_source_arn: str | None = None) -> None:
        servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        head = [b'{"eventSource":', _quoted(event_source)]
        if event_source_arn:
            head += [b',"eventSourceArn":', _quoted(event_source_arn)]
        head += [b',"bootstrapServers":', _quoted(servers), b',"records":{']
        self._head = b"".join(head)
        self._tail = b"}}"
        self._topics: dict[str, bytes] = {}
        self._headers: dict[tuple, bytes] = {}
        self.event_source = event_source
        self.event_source_arn = event_source_arn
        self.bootstrap_servers = servers

    def _topic(self, topic: str) -> bytes:
        quoted = self._topics.get(topic)
        if quoted is None:
            quoted = self._topics[topic] = _quoted(topic)
        return quoted

    def _headers_of(self, headers) -> bytes:
        """_headers_json(headers), remembered: writing a header's bytes as a JSON list of numbers was
        the costliest part of a record (one content-type header, twice per record: for its size, then
        for the event; sizes 5.9 -> 1.0 and event 8.8 -> 3.7 us per record measured on a loaded
        machine), and nearly every record carries the very same header."""
        try:
            key = tuple(headers)
            cached = self._headers.get(key)
        except TypeError:  # an unhashable header value (not bytes): nothing to remember it by
            return _headers_json(headers)
        if cached is None:
            if len(self._headers) >= _HEADER_CACHE_MAX:
                self._headers.clear()
            cached = self._headers[key] = _headers_json(headers)
        return cached

    # -- sizes -------------------------------------------------------------------------
    def record_size(self, rec) -> int:
        """Exact byte length of `rec` inside the event (without the separating comma)."""
        size = (_FIXED + len(self._topic(rec.topic)) + len(str(rec.partition)) + len(str(rec.offset))
                + len(str(rec.timestamp)) + len(TIMESTAMP_TYPES.get(rec.timestamp_type, NO_TIMESTAMP_TYPE)))
        if rec.key is not None:
            size += _KEY_FIXED + _b64len(len(rec.key))
        if rec.value is not None:
            size += _VALUE_FIXED + _b64len(len(rec.value))
        return size + (len(self._headers_of(rec.headers)) if rec.headers else 2)

    def record_sizes(self, topic: str, partition: int, records: Sequence) -> list[int]:
        """record_size of each record of one partition, in one pass: the trigger's hottest loop
        (every record fetched), so the per-partition part is computed once and the rest inline."""
        fixed = _FIXED + len(self._topic(topic)) + len(str(partition))
        ts_len, no_ts_len = _TIMESTAMP_TYPE_LEN, len(NO_TIMESTAMP_TYPE)
        headers_of = self._headers_of
        sizes = []
        append = sizes.append
        for rec in records:
            key, value, headers = rec.key, rec.value, rec.headers
            size = fixed + len(str(rec.offset)) + len(str(rec.timestamp)) + ts_len.get(rec.timestamp_type, no_ts_len)
            if key is not None:
                size += _KEY_FIXED + 4 * ((len(key) + 2) // 3)
            if value is not None:
                size += _VALUE_FIXED + 4 * ((len(value) + 2) // 3)
            append(size + (len(headers_of(headers)) if headers else 2))
        return sizes

    def group_size(self, topic: str, partition: int) -> int:
        """Bytes a "<topic>-<partition>": [ ... ] group adds around its records."""
        return len(_quoted(f"{topic}-{partition}")) + len(b":[]")

    def envelope_size(self) -> int:
        return len(self._head) + len(self._tail)

    def event_size(self, records: Sequence) -> int:
        """len(self.build(records)) without building it."""
        groups: dict[tuple[str, int], int] = {}
        body = 0
        for rec in records:
            groups[(rec.topic, rec.partition)] = groups.get((rec.topic, rec.partition), 0) + 1
            body += self.record_size(rec)
        size = self.envelope_size() + body + max(len(groups) - 1, 0)
        for (topic, partition), count in groups.items():
            size += self.group_size(topic, partition) + count - 1
        return size

    # -- building ----------------------------------------------------------------------
    def _write_record(self, out: bytearray, rec) -> None:
        out += _RECORD_HEAD % (self._topic(rec.topic), rec.partition, rec.offset, rec.timestamp,
                               TIMESTAMP_TYPES.get(rec.timestamp_type, NO_TIMESTAMP_TYPE))
        if rec.key is not None:
            out += b',"key":"'
            out += b64encode(rec.key)
            out += b'"'
        if rec.value is not None:
            out += b',"value":"'
            out += b64encode(rec.value)
            out += b'"'
        out += b',"headers":'
        out += self._headers_of(rec.headers) if rec.headers else b"[]"
        out += b"}"

    def record_json(self, rec) -> bytes:
        out = bytearray()
        self._write_record(out, rec)
        return bytes(out)

    def build(self, records: Iterable) -> bytearray:
        """The event for `records`, grouped by topic-partition in arrival order.

        Written straight into one bytearray (boto3 sends it as is): the batch exists once in
        memory, not as per-record fragments plus their join.
        """
        groups: dict[tuple[str, int], list] = {}
        for rec in records:
            tp = (rec.topic, rec.partition)
            group = groups.get(tp)
            if group is None:
                group = groups[tp] = []
            group.append(rec)
        out = bytearray(self._head)
        write, headers_of = self._write_record, self._headers_of
        full, types, b64 = _RECORD_FULL, TIMESTAMP_TYPES, b2a_base64
        for n, ((topic, partition), recs) in enumerate(groups.items()):
            if n:
                out += b","
            out += _quoted(f"{topic}-{partition}")
            out += b":["
            quoted = self._topic(topic)
            for i, rec in enumerate(recs):
                if i:
                    out += b","
                key, value = rec.key, rec.value
                if key is not None and value is not None:
                    # Same bytes as _write_record, one formatting operation instead of nine appends.
                    out += full % (quoted, partition, rec.offset, rec.timestamp,
                                   types.get(rec.timestamp_type, NO_TIMESTAMP_TYPE),
                                   b64(key, newline=False), b64(value, newline=False),
                                   headers_of(rec.headers) if rec.headers else b"[]")
                else:
                    write(out, rec)
            out += b"]"
        out += self._tail
        return out

    def build_dict(self, records: Iterable) -> dict:
        return json.loads(self.build(records))


def build_event(records: Iterable, bootstrap_servers: str | Sequence[str], event_source: str = "SelfManagedKafka",
                event_source_arn: str | None = None) -> dict:
    """Convenience for tests and tools: the ESM event for `records` as a dict."""
    return EsmEventBuilder(bootstrap_servers, event_source, event_source_arn).build_dict(records)


def partition_key(topic: str, partition: int) -> str:
    """The "<topic>-<partition>" key AWS uses under "records" and in batchItemFailures."""
    return f"{topic}-{partition}"
