"""One Kafka record -> one Position row. The tracker's only place that decodes a record: JSON or
Protobuf by the record's `content-type` header, through pipeline_common.state_codec."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import NamedTuple

from pipeline_common.state_codec import UndecodableState, content_type_of, decode_state

MAX_EPOCH_S = 4102444800  # 2100-01-01: anything later is a unit mistake (ms for s), not a position time
_ICAO24_HEX = frozenset("0123456789abcdef")


class InvalidRecord(ValueError):
    """The record cannot become a position; the message is the reason stored with the reject."""


class Position(NamedTuple):
    """One row of `positions`, fields in the table's column order (COPY writes them as they are)."""
    icao24: str
    time_position: datetime
    last_contact: datetime
    callsign: str | None
    origin_country: str | None
    longitude: float | None
    latitude: float | None
    baro_altitude: float | None
    geo_altitude: float | None
    on_ground: bool
    velocity: float | None
    true_track: float | None
    vertical_rate: float | None
    squawk: str | None
    category: int | None
    position_source: int | None
    source: str | None
    kafka_partition: int
    kafka_offset: int


COLUMNS = Position._fields


def valid_icao24(text: str) -> bool:
    return len(text) == 6 and set(text) <= _ICAO24_HEX


_FLOAT_MAX = 1.7976931348623157e308


def _number(state: dict, name: str, low: float | None = None, high: float | None = None) -> float | None:
    value = state.get(name)
    if value is None:
        return None
    # Hot path (most fields of every record): a JSON int or float inside the bounds. NaN and +-inf fail
    # every comparison; type() rather than isinstance() because a bool is an int.
    kind = type(value)
    if kind is float or kind is int:
        if low is None:
            if -_FLOAT_MAX <= value <= _FLOAT_MAX:
                return float(value)
        elif low <= value <= high:
            return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRecord(f"{name} is not a finite number: {value!r}")
    raise InvalidRecord(f"{name}={value!r} is outside {low}..{high}")


def _small_int(state: dict, name: str) -> int | None:
    value = state.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -32768 <= value <= 32767:
        raise InvalidRecord(f"{name} is not a small integer: {value!r}")
    return value


def _text(state: dict, name: str) -> str | None:
    value = state.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} is not a string: {value!r}")
    return value.strip() or None


def _epoch(state: dict, name: str) -> datetime | None:
    value = _number(state, name, 0, MAX_EPOCH_S)
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def decode(value: bytes | None, partition: int, offset: int, headers=None) -> Position:
    """A Kafka record value (JSON or Protobuf state) -> Position; raises InvalidRecord with the reason."""
    if not value:
        raise InvalidRecord("empty record value")
    try:
        # JSON or Protobuf by the content-type header, through the decoder every consumer shares.
        state = decode_state(value, content_type_of(headers))
    except UndecodableState as exc:
        raise InvalidRecord(str(exc)) from None
    icao24 = state.get("icao24")
    if not isinstance(icao24, str) or not valid_icao24(icao24.strip().lower()):
        raise InvalidRecord(f"icao24 is not 6 hex digits: {icao24!r}")
    last_contact = _epoch(state, "last_contact")
    time_position = _epoch(state, "time_position") or last_contact
    if time_position is None:
        raise InvalidRecord("neither time_position nor last_contact is set")
    on_ground = state.get("on_ground")
    if on_ground is not None and not isinstance(on_ground, bool):
        raise InvalidRecord(f"on_ground is not a boolean: {on_ground!r}")
    return Position(
        icao24=icao24.strip().lower(),
        time_position=time_position,
        last_contact=last_contact or time_position,
        callsign=_text(state, "callsign"),
        origin_country=_text(state, "origin_country"),
        longitude=_number(state, "longitude", -180, 180),
        latitude=_number(state, "latitude", -90, 90),
        baro_altitude=_number(state, "baro_altitude"),
        geo_altitude=_number(state, "geo_altitude"),
        on_ground=bool(on_ground),
        velocity=_number(state, "velocity"),
        true_track=_number(state, "true_track"),
        vertical_rate=_number(state, "vertical_rate"),
        squawk=_text(state, "squawk"),
        category=_small_int(state, "category"),
        position_source=_small_int(state, "position_source"),
        source=_text(state, "source"),
        kafka_partition=partition,
        kafka_offset=offset,
    )
