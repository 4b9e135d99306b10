"""Reads the three event shapes the function accepts into one flat list of input records.

1. AWS Kafka event source mapping events ("eventSource": "aws:kafka" for MSK, "SelfManagedKafka"
   for self-managed): {"records": {"<topic>-<partition>": [{"topic", "partition", "offset",
   "timestamp", "timestampType", "key": base64|absent|null, "value": base64|null,
   "headers": [{"name": [byte, ...]}, ...]}, ...]}}. Each value is decoded by its ``content-type``
   header (application/json, or application/x-protobuf for flightpipe.OpenSkyState; none: JSON)
   through pipeline_common.state_codec, the one decoder every consumer shares.

2. One raw OpenSky state (the JSON object the producer writes to Kafka) passed as the event itself,
   as the seed's per-message trigger sends it.
3. A JSON list of raw states.

Raw states have no Kafka coordinates, so they are identified as partition "raw-0" and offset = their
index in the event; batchItemFailures for them use that identity.
"""
from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from pipeline_common.state_codec import CONTENT_TYPE_HEADER, UndecodableState, decode_state

logger = logging.getLogger(__name__)

RAW_PARTITION = "raw-0"
ESM_SOURCES = ("aws:kafka", "SelfManagedKafka", "aws:SelfManagedKafka")


@dataclass(slots=True)
class InputRecord:
    """One record of the batch: its identity and either the decoded state or why it could not be read."""
    partition: str            # "<topic>-<partition>", exactly the key of the ESM records map
    offset: int
    topic: str | None = None
    timestamp_ms: int | None = None
    key_b64: str | None = None  # decoded only on demand: the state carries icao24 itself
    state: object = None
    error: str | None = None

    @property
    def key(self) -> bytes | None:
        return _decode_key(self.key_b64)

    def identifier(self) -> dict:
        return {"partition": self.partition, "offset": self.offset}


def is_esm_event(event: object) -> bool:
    return isinstance(event, dict) and isinstance(event.get("records"), dict) and (
        event.get("eventSource") in ESM_SOURCES or "icao24" not in event)


def decode_headers(headers: object) -> list[tuple[str, bytes]]:
    """ESM headers [{"k": [104, 105]}] -> [("k", b"hi")]; a malformed header raises ValueError."""
    decoded: list[tuple[str, bytes]] = []
    for header in headers or []:
        if not isinstance(header, dict):
            raise ValueError(f"header is not an object: {header!r}")
        for name, value in header.items():
            # Older documentation showed base64 strings here; accept both.
            decoded.append((name, base64.b64decode(value) if isinstance(value, str) else bytes(value)))
    return decoded


def _content_type(headers: object) -> tuple[str | None, str | None]:
    """(content-type, None) or (None, reason). Only this one header is decoded: it picks the decoder."""
    if not headers:
        return None, None
    if not isinstance(headers, list):
        return None, f"record headers are {type(headers).__name__}, not a list"
    for header in headers:
        if not isinstance(header, dict):
            continue
        for name, value in header.items():
            if name.lower() != CONTENT_TYPE_HEADER:
                continue
            try:
                raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
            except (binascii.Error, ValueError, TypeError):
                return None, "record header content-type is not bytes"
            return raw.decode("latin-1"), None
    return None, None


def _decode_value(value: object, headers: object = None) -> tuple[object, str | None]:
    """(state, None) or (None, reason). The content-type header says JSON or Protobuf (none: JSON)."""
    if value is None:
        return None, "record value is null (a tombstone): there is no state to process"
    if not isinstance(value, str):
        return None, f"record value is not a base64 string but {type(value).__name__}"
    try:
        # strict_mode is b64decode(validate=True) without its regex pre-scan of the whole string.
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return None, "record value is not valid base64"
    content_type, error = _content_type(headers)
    if error is not None:
        return None, error
    try:
        return decode_state(raw, content_type), None
    except UndecodableState as exc:
        return None, str(exc)


def _decode_key(key: object) -> bytes | None:
    if not isinstance(key, str):
        return None  # absent or null: Kafka keys are optional, the state carries icao24 itself
    try:
        return base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _esm_records(event: dict) -> list[InputRecord]:
    # Runs once per record of batches of up to 10,000: per-partition values are computed once, and
    # offsets and timestamps that are plain ints (always, from AWS) skip the general conversion.
    records: list[InputRecord] = []
    append = records.append
    for partition_key, batch in event["records"].items():
        partition = str(partition_key)
        if not isinstance(batch, list):
            append(InputRecord(partition, -1, error="records entry is not a list"))
            continue
        default_topic = partition.rpartition("-")[0] or None
        for position, record in enumerate(batch):
            if not isinstance(record, dict):
                append(InputRecord(partition, -1, error=f"record #{position} is not an object"))
                continue
            get = record.get
            offset, timestamp = get("offset"), get("timestamp")
            if type(offset) is not int:
                offset = _int_or_none(offset)
            if type(timestamp) is not int:
                timestamp = _int_or_none(timestamp)
            topic = get("topic") or default_topic
            if offset is None:
                append(InputRecord(partition, -1, topic, timestamp, get("key"), error="record has no integer offset"))
                continue
            state, error = _decode_value(get("value"), get("headers"))
            append(InputRecord(partition, offset, topic, timestamp, get("key"), state, error))
    return records


def read_event(event: object) -> list[InputRecord]:
    """Every record the event carries, in event order; never raises."""
    if is_esm_event(event):
        return _esm_records(event)
    if isinstance(event, dict):
        return [InputRecord(RAW_PARTITION, 0, state=event)]
    if isinstance(event, list):
        return [InputRecord(RAW_PARTITION, i, state=item) for i, item in enumerate(event)]
    return [InputRecord(RAW_PARTITION, 0, error=f"event is {type(event).__name__}, not an ESM event, "
                                                 "a state object or a list of states")]


def failure_response(records: list[InputRecord], failures: dict[int, str]) -> dict:
    """The response's failure lists for `failures` (record index -> reason), in event order, each
    failure logged with its topic, partition and offset: {"batchItemFailures", "failureReasons"}."""
    batch_item_failures, failure_reasons = [], []
    for index in sorted(failures):
        record = records[index]
        batch_item_failures.append({"itemIdentifier": record.identifier()})
        failure_reasons.append({**record.identifier(), "reason": failures[index]})
        logger.warning("record failed: %s", failures[index],
                       extra={"topic": record.topic, "partition": record.partition, "offset": record.offset})
    return {"batchItemFailures": batch_item_failures, "failureReasons": failure_reasons}
