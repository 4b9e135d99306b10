"""One Kafka record -> one Position row. The tracker's only place that decodes a record: JSON or
Protobuf by the record's `content-type` header, through pipeline_common.state_codec."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import NamedTuple

import orjson

from pipeline_common.state_codec import JSON, UndecodableState, content_type_of, decode_state, media_type

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


def _state(value: bytes, headers) -> dict:
    content_type = content_type_of(headers) if headers else None
    if content_type is None or media_type(content_type) == JSON:
        # orjson parses a state ~4x faster than the json module. Whatever it refuses (NaN literals,
        # integers beyond 64 bits, lone surrogates, invalid UTF-8, not an object) goes the shared
        # decoder's way, which accepts or rejects it, with its reason, exactly as before.
        try:
            state = orjson.loads(value)
        except orjson.JSONDecodeError:
            state = None
        if type(state) is dict:
            return state
    try:
        # JSON or Protobuf by the content-type header, through the decoder every consumer shares.
        state = decode_state(value, content_type)
    except UndecodableState as exc:
        raise InvalidRecord(str(exc)) from None
    for name in _TEXT_FIELDS:
        text = state.get(name)
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # the json module reads "\ud800"; no database can store it
                raise InvalidRecord(f"{name} is not valid Unicode text (a lone surrogate): {text!r}") from None
    return state


_TEXT_FIELDS = ("icao24", "callsign", "origin_country", "squawk", "source")


def decode(value: bytes | None, partition: int, offset: int, headers=None) -> Position:
    """A Kafka record value (JSON or Protobuf state) -> Position; raises InvalidRecord with the reason."""
    if not value:
        raise InvalidRecord("empty record value")
    state = _state(value, headers)
    # The common case in one pass; anything unusual (or wrong) takes the checked way, which gives the
    # very same row, or the reason the record is refused.
    return _usual(state, partition, offset) or _checked(state, partition, offset)


_UTC = timezone.utc
_from_epoch = datetime.fromtimestamp
_new_position = tuple.__new__
_NO = object()  # "not the usual case": _usual gives up and _checked decides


def _f(value, low: float = -_FLOAT_MAX, high: float = _FLOAT_MAX):
    """A number as _number accepts it, as a float; None stays None; anything else is _NO."""
    if value is None:
        return None
    kind = type(value)
    if (kind is float or kind is int) and low <= value <= high:
        return float(value)
    return _NO


def _s(value):
    if value is None:
        return None
    if type(value) is str:
        return value.strip() or None
    return _NO


def _i(value):
    if value is None or (type(value) is int and -32768 <= value <= 32767):
        return value
    return _NO


def _t(value):
    """An epoch time as _epoch accepts it, as a UTC datetime; None stays None; anything else is _NO."""
    if value is None:
        return None
    kind = type(value)
    if (kind is float or kind is int) and 0 <= value <= MAX_EPOCH_S:
        return _from_epoch(float(value), _UTC)
    return _NO


def _usual(state: dict, partition: int, offset: int) -> Position | None:
    """The row of a well-formed state whose icao24 is already 6 lower-case hex digits, else None."""
    get = state.get
    icao24 = get("icao24")
    if type(icao24) is not str or len(icao24) != 6 or not _ICAO24_HEX.issuperset(icao24):
        return None
    contact, when = get("last_contact"), get("time_position")
    last_contact = _t(contact)
    # Mostly the same number (OpenSky's time_position is the last contact of a fresh position): one datetime.
    time_position = last_contact if when == contact and type(when) is type(contact) else _t(when)
    if time_position is None:
        time_position = last_contact
        if time_position is None:
            return None
    elif last_contact is None:
        last_contact = time_position
    on_ground = get("on_ground")
    if on_ground is None:
        on_ground = False
    elif on_ground is not True and on_ground is not False:
        return None
    row = (icao24, time_position, last_contact, _s(get("callsign")), _s(get("origin_country")),
           _f(get("longitude"), -180, 180), _f(get("latitude"), -90, 90), _f(get("baro_altitude")),
           _f(get("geo_altitude")), on_ground, _f(get("velocity")), _f(get("true_track")), _f(get("vertical_rate")),
           _s(get("squawk")), _i(get("category")), _i(get("position_source")), _s(get("source")), partition, offset)
    for field in row:
        if field is _NO:
            return None
    return _new_position(Position, row)


def _checked(state: dict, partition: int, offset: int) -> Position:
    """Every field checked one by one: the row, or InvalidRecord naming the first problem."""
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
