"""The one decoder (and encoder) of an aircraft state on the wire: JSON or Protobuf, chosen by the
Kafka record's ``content-type`` header (none: JSON). The Lambda functions (kafka_esm.py), the tracker and the
benchmarks all decode through ``decode_state`` so the two formats give the very same dict.

Standard library only at import time: the Protobuf runtime is imported on the first Protobuf
record, so JSON-only consumers never need it (the Lambda zip ships it, see infra/deploy/lambda_package.py).
"""
from __future__ import annotations

import json

CONTENT_TYPE_HEADER = "content-type"
JSON = "application/json"
PROTOBUF = "application/x-protobuf; messageType=flightpipe.OpenSkyState"
FORMATS = {"json": JSON, "protobuf": PROTOBUF}


def record_headers(content_type: str) -> list[tuple[str, bytes]]:
    """The Kafka headers a producer writes for a value in ``content_type``: JSON, the default, goes without
    one (no header means JSON to every consumer, decode_state), any other format names itself.

    Not a header on every record: one 16-byte header cost ~30 % of the function path's capacity (make bench,
    capacity section, same run: 36,000-39,000 positions/s with it, 49,000-52,000 without; kafka-python parses
    it per record, and the ESM event carries its bytes as a JSON list of numbers that MiniStack and the
    function parse again)."""
    return [] if content_type == JSON else [(CONTENT_TYPE_HEADER, content_type.encode("ascii"))]


# Every key of the JSON message, in its order (OpenSky's 18 fields, then the producer's provenance);
# kept here too so this module needs nothing outside pipeline_common.
STATE_KEYS = ("icao24", "callsign", "origin_country", "time_position", "last_contact", "longitude", "latitude",
              "baro_altitude", "on_ground", "velocity", "true_track", "vertical_rate", "sensors", "geo_altitude",
              "squawk", "spi", "position_source", "category", "source", "fetched_at")
_OPTIONAL = ("callsign", "time_position", "longitude", "latitude", "baro_altitude", "velocity", "true_track",
             "vertical_rate", "geo_altitude", "squawk", "position_source", "category")

_raw_decode = json.JSONDecoder().raw_decode
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class UndecodableState(ValueError):
    """The bytes are not a state in the format the header names; ``str(exc)`` is the reason."""


def media_type(content_type: str | bytes | None) -> str | None:
    """'application/x-protobuf; messageType=...' -> 'application/x-protobuf'; None when absent."""
    if content_type is None:
        return None
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return content_type.split(";", 1)[0].strip().lower() or None


def content_type_of(headers) -> str | None:
    """The content-type among Kafka headers given as (name, bytes) pairs; None when there is none."""
    for name, value in headers or ():
        if name.lower() == CONTENT_TYPE_HEADER:
            return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
    return None


def decode_state(value: bytes, content_type: str | bytes | None) -> dict:
    """Record value -> state dict. No header means JSON (what every producer wrote before the header)."""
    kind = media_type(content_type)
    if kind is None or kind == JSON:
        return decode_json(value)
    if kind == "application/x-protobuf":
        return decode_protobuf(value)
    raise UndecodableState(f"record content-type {content_type!r} is neither {JSON} nor {PROTOBUF}")


def decode_json(value: bytes) -> dict:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise UndecodableState("record value is not UTF-8") from None
    try:
        # The producer's compact JSON is exactly one document: raw_decode reads it without json.loads'
        # two whitespace scans. Anything else (whitespace, trailing data) goes through json.loads, which
        # accepts or rejects it exactly as before.
        state, end = _raw_decode(text)
        if end != len(text):
            state = json.loads(text)
    except ValueError:
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise UndecodableState(f"record value is not valid JSON: {exc}") from None
    if not isinstance(state, dict):
        raise UndecodableState(f"record value is JSON {type(state).__name__}, not an object")
    return state


_message_class = None


def _message():
    global _message_class
    if _message_class is None:
        from pipeline_common.opensky_state_pb2 import OpenSkyState  # first Protobuf record only
        _message_class = OpenSkyState
    return _message_class


def decode_protobuf(value: bytes) -> dict:
    from google.protobuf.message import DecodeError

    message = _message()()
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableState(f"record value is not a valid flightpipe.OpenSkyState Protobuf message: {exc}") from None
    if not message.icao24:
        # Protobuf parses almost any bytes into *some* message; one without an address is not a state.
        raise UndecodableState("record value is not a flightpipe.OpenSkyState Protobuf message: it has no icao24")
    state = {
        "icao24": message.icao24, "origin_country": message.origin_country, "last_contact": message.last_contact,
        "on_ground": message.on_ground, "spi": message.spi, "source": message.source,
        "fetched_at": message.fetched_at,
        "sensors": list(message.sensors.serials) if message.HasField("sensors") else None,
    }
    has = message.HasField
    for name in _OPTIONAL:
        state[name] = getattr(message, name) if has(name) else None
    return {key: state[key] for key in STATE_KEYS}


def encode_state(state: dict, content_type: str = JSON) -> bytes:
    """State dict -> record value in the format ``content_type`` names (PROTOBUF or JSON)."""
    if content_type == JSON:
        return _json_encode(state).encode("utf-8")
    if content_type != PROTOBUF:
        raise ValueError(f"cannot encode to {content_type!r}")
    fields = {k: v for k, v in state.items() if v is not None and k != "sensors" and k in _FIELD_NAMES}
    message = _message()(**fields)
    if state.get("sensors") is not None:
        message.sensors.serials.extend(state["sensors"])
    return message.SerializeToString()


_FIELD_NAMES = frozenset(STATE_KEYS)
