"""The OpenSky state vector: field order, validation of one raw row, and the Kafka message shape.

``FIELDS`` is the single place that maps an array position to a name (like opensky-api's
``StateVector.keys``); every source (OpenSky, synthetic, CSV replay) emits dicts in this shape.
"""
from __future__ import annotations

import math
import re
from typing import Any

# Index -> name, exactly as documented for GET /states/all (index 17 only with extended=1).
FIELDS: tuple[str, ...] = (
    "icao24",           # 0  str, 24-bit address as 6 lower-case hex digits
    "callsign",         # 1  str | null (8 chars, space padded by OpenSky)
    "origin_country",   # 2  str, inferred from the icao24 allocation block
    "time_position",    # 3  int | null, epoch s of the last position report
    "last_contact",     # 4  int, epoch s of the last message of any kind
    "longitude",        # 5  float | null, WGS-84 degrees
    "latitude",         # 6  float | null, WGS-84 degrees
    "baro_altitude",    # 7  float | null, metres
    "on_ground",        # 8  bool, from a surface position report
    "velocity",         # 9  float | null, m/s over ground
    "true_track",       # 10 float | null, degrees clockwise from north
    "vertical_rate",    # 11 float | null, m/s, positive = climbing
    "sensors",          # 12 int[] | null, only when filtering by sensor
    "geo_altitude",     # 13 float | null, metres
    "squawk",           # 14 str | null
    "spi",              # 15 bool, special purpose indicator
    "position_source",  # 16 int, 0 ADS-B, 1 ASTERIX, 2 MLAT, 3 FLARM
    "category",         # 17 int | null, emitter category (extended=1 only)
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}

# Provenance added by the producer after the 18 OpenSky fields.
PROVENANCE: tuple[str, ...] = ("source", "fetched_at")
MESSAGE_FIELDS: tuple[str, ...] = FIELDS + PROVENANCE

FLOAT_FIELDS = frozenset({"longitude", "latitude", "baro_altitude", "velocity", "true_track",
                          "vertical_rate", "geo_altitude"})
INT_FIELDS = frozenset({"time_position", "last_contact", "position_source", "category"})
BOOL_FIELDS = frozenset({"on_ground", "spi"})

_ICAO24 = re.compile(r"[0-9a-f]{6}")


class InvalidStateVector(ValueError):
    """A row that must not be published; ``reason`` says why in words a user can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _number(name: str, value: Any, *, integral: bool) -> float | int:
    # bool is an int subclass in Python but never a valid number in this feed.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidStateVector(f"{name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidStateVector(f"{name} must be finite, got {value!r}")
    if integral:
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidStateVector(f"{name} must be an integer, got {value!r}")
            return int(value)
        return value
    return float(value)


def parse_state_vector(row: Any) -> dict:
    """One raw ``states`` row -> dict keyed by ``FIELDS``.

    Nullable fields may be null or missing (a short row is padded with None, extra trailing
    elements are ignored). Raises ``InvalidStateVector`` for a row that cannot be trusted:
    not an array, a bad icao24, no last_contact or on_ground, wrong types, impossible coordinates.
    """
    if not isinstance(row, (list, tuple)):
        raise InvalidStateVector(f"state vector must be an array, got {type(row).__name__}")
    values = list(row[:len(FIELDS)]) + [None] * (len(FIELDS) - min(len(row), len(FIELDS)))
    raw = dict(zip(FIELDS, values))

    icao24 = raw["icao24"]
    if not isinstance(icao24, str) or not _ICAO24.fullmatch(icao24.strip().lower()):
        raise InvalidStateVector(f"icao24 must be 6 hex digits, got {icao24!r}")
    out: dict = {"icao24": icao24.strip().lower()}

    callsign = raw["callsign"]
    if callsign is not None and not isinstance(callsign, str):
        raise InvalidStateVector(f"callsign must be a string or null, got {type(callsign).__name__}")
    out["callsign"] = (callsign.strip() or None) if callsign is not None else None

    country = raw["origin_country"]
    if not isinstance(country, str):
        raise InvalidStateVector(f"origin_country must be a string, got {type(country).__name__}")
    out["origin_country"] = country

    for name in FIELDS[3:]:
        if name in out:
            continue
        value = raw[name]
        if name in ("last_contact", "on_ground") and value is None:
            # Without these a consumer can neither order updates nor tell airborne from ground.
            raise InvalidStateVector(f"{name} is missing")
        if value is None:
            out[name] = False if name == "spi" else None
        elif name in FLOAT_FIELDS:
            out[name] = _number(name, value, integral=False)
        elif name in INT_FIELDS:
            out[name] = _number(name, value, integral=True)
        elif name in BOOL_FIELDS:
            if not isinstance(value, bool):
                raise InvalidStateVector(f"{name} must be true/false, got {value!r}")
            out[name] = value
        elif name == "squawk":
            if not isinstance(value, str):
                raise InvalidStateVector(f"squawk must be a string or null, got {type(value).__name__}")
            out[name] = value.strip() or None
        elif name == "sensors":
            if not isinstance(value, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in value):
                raise InvalidStateVector("sensors must be an array of integers or null")
            out[name] = list(value)

    lon, lat = out["longitude"], out["latitude"]
    if lon is not None and not -180.0 <= lon <= 180.0:
        raise InvalidStateVector(f"longitude {lon} is outside [-180, 180]")
    if lat is not None and not -90.0 <= lat <= 90.0:
        raise InvalidStateVector(f"latitude {lat} is outside [-90, 90]")
    return out


def to_message(state: dict, source: str, fetched_at: float) -> dict:
    """The Kafka value: the 18 OpenSky fields in documented order, then provenance."""
    message = {name: state.get(name) for name in FIELDS}
    message["source"] = source
    message["fetched_at"] = fetched_at
    return message


def as_row(state: dict) -> list:
    """Inverse of ``parse_state_vector`` for tests and fixtures: dict -> positional array."""
    return [state.get(name) for name in FIELDS]

