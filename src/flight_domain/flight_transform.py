"""Pure transformations of one OpenSky state into one notification: filter, unit conversion, time format.

Output (exactly these keys, in this order):
  icao24          str, stripped
  callsign        str stripped of OpenSky's space padding; "" -> null
  origin_country  str (also the SNS message attribute that subscribers filter on)
  time_position   ISO 8601 UTC with "Z", whole seconds (fraction truncated). When OpenSky has no
                  position time (time_position null) the state's last_contact is used instead: it is
                  the time the state was last heard, the best available "as of" for the position.
  longitude       degrees, rounded to 5 decimals (about 1 m; OpenSky itself gives 4-5)
  latitude        degrees, rounded to 5 decimals
  altitude_feet   int: barometric altitude, else geometric, x 3.28084, rounded half up
  velocity_knots  int: m/s x 1.943844, rounded half up; null when OpenSky has no velocity

A flight is kept only if it is in the air: on_ground is not true, it has a position, and its altitude
(barometric, else geometric) is > 0 m. States that fail these tests are *filtered* (not errors).
Malformed states (wrong types, NaN/inf, out-of-range coordinates or times, missing identity) raise
InvalidState with a reason, which the handler reports as a batch item failure.
"""
from __future__ import annotations

import math
import sys
import time

FEET_PER_METRE = 3.28084
KNOTS_PER_MPS = 1.943844
COORDINATE_DECIMALS = 5
# time.gmtime and ISO 8601 four-digit years both stop at 9999-12-31T23:59:59Z.
MAX_EPOCH_S = 253402300799
_FLOAT_MAX = sys.float_info.max

OUTPUT_FIELDS = ("icao24", "callsign", "origin_country", "time_position", "longitude", "latitude",
                 "altitude_feet", "velocity_knots")


class InvalidState(ValueError):
    """The state cannot be turned into a notification; str(exc) is the reason."""


def metres_to_feet(metres: float) -> float:
    return metres * FEET_PER_METRE


def mps_to_knots(mps: float) -> float:
    return mps * KNOTS_PER_MPS


def round_half_up(value: float) -> int:
    """Round to the nearest integer, .5 away from zero (Python's round() is banker's rounding)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def epoch_to_iso(epoch_s: float) -> str:
    """1722515696 -> '2024-08-01T12:34:56Z'; fractions of a second are truncated."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(epoch_s)))


def iso_to_epoch(text: str) -> int:
    """Inverse of epoch_to_iso (for whole seconds): '2024-08-01T12:34:56Z' -> 1722515696."""
    import calendar  # only tests and tools need the inverse; keep the hot path import-light
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _number(state: dict, field: str) -> float | None:
    """A finite number or None; anything else (bool, str, NaN, inf) is malformed."""
    value = state.get(field)
    if value is None:
        return None
    # Hot path (several fields of every record): a JSON float or int within the float range is finite.
    # NaN and +-inf fail the comparison, and so does an int too large for a float, which the general
    # path below turns into the same error as before.
    kind = type(value)
    if (kind is float or kind is int) and -_FLOAT_MAX <= value <= _FLOAT_MAX:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidState(f"{field} is not a number: {value!r}")
    if not math.isfinite(value):
        raise InvalidState(f"{field} is not finite: {value!r}")
    return value


def _text(state: dict, field: str) -> str | None:
    value = state.get(field)
    if value is None:
        return None
    if type(value) is str:
        return value.strip() or None
    if not isinstance(value, str):
        raise InvalidState(f"{field} is not a string: {value!r}")
    return value.strip() or None


def _epoch(state: dict, field: str) -> float | None:
    value = _number(state, field)
    if value is not None and not 0 <= value <= MAX_EPOCH_S:
        raise InvalidState(f"{field} is outside 0..{MAX_EPOCH_S} epoch seconds: {value!r}")
    return value


def _position(state: dict) -> tuple[bool, float | None, float | None, float | None]:
    """(on_ground, longitude, latitude, altitude) read once; altitude is barometric, else geometric."""
    on_ground = state.get("on_ground")
    if on_ground is not None and not isinstance(on_ground, bool):
        raise InvalidState(f"on_ground is not a boolean: {on_ground!r}")
    longitude, latitude = _number(state, "longitude"), _number(state, "latitude")
    altitude = _number(state, "baro_altitude")
    geo = _number(state, "geo_altitude")  # validated even when unused: NaN anywhere is malformed
    return bool(on_ground), longitude, latitude, altitude if altitude is not None else geo


def _airborne_reason(on_ground: bool, longitude, latitude, altitude) -> str | None:
    if on_ground:
        return "on ground"
    if longitude is None or latitude is None:
        return "no position"
    if altitude is None:
        return "no altitude"
    if altitude <= 0:
        return f"altitude {altitude} m is not above 0"
    return None


def airborne_reason(state: dict) -> str | None:
    """None if the flight is in the air, else why it is filtered out. Raises InvalidState if malformed."""
    return _airborne_reason(*_position(state))


def _notification(state: dict, longitude: float, latitude: float, altitude: float) -> dict:
    icao24 = _text(state, "icao24")
    if icao24 is None:
        raise InvalidState("icao24 is missing")
    country = _text(state, "origin_country")
    if country is None:
        raise InvalidState("origin_country is missing (subscribers filter on it)")
    if not -180.0 <= longitude <= 180.0:
        raise InvalidState(f"longitude {longitude} is outside -180..180")
    if not -90.0 <= latitude <= 90.0:
        raise InvalidState(f"latitude {latitude} is outside -90..90")
    seen_at = _epoch(state, "time_position")
    if seen_at is None:
        seen_at = _epoch(state, "last_contact")
    if seen_at is None:
        raise InvalidState("time_position and last_contact are both missing")
    velocity = _number(state, "velocity")
    if velocity is not None and velocity < 0:
        raise InvalidState(f"velocity {velocity} m/s is negative")
    return {
        "icao24": icao24,
        "callsign": _text(state, "callsign"),
        "origin_country": country,
        "time_position": epoch_to_iso(seen_at),
        "longitude": round(longitude, COORDINATE_DECIMALS),
        "latitude": round(latitude, COORDINATE_DECIMALS),
        "altitude_feet": round_half_up(metres_to_feet(altitude)),
        "velocity_knots": None if velocity is None else round_half_up(mps_to_knots(velocity)),
    }


def _require_identity(state: dict) -> None:
    """Every state, in the air or not, names its aircraft and country and when it was heard. A record
    without them is malformed (a batch item failure, dead-lettered), not a flight filtered out."""
    if _text(state, "icao24") is None:
        raise InvalidState("icao24 is missing")
    if _text(state, "origin_country") is None:
        raise InvalidState("origin_country is missing (subscribers filter on it)")
    if _epoch(state, "time_position") is None and _epoch(state, "last_contact") is None:
        raise InvalidState("time_position and last_contact are both missing")


def to_notification(state: dict) -> dict:
    """The notification for a state already known to be airborne. Raises InvalidState if malformed."""
    _on_ground, longitude, latitude, altitude = _position(state)
    if longitude is None or latitude is None or altitude is None:
        raise InvalidState("state has no position or altitude")
    return _notification(state, longitude, latitude, altitude)


def evaluate(state: object) -> tuple[dict | None, str | None]:
    """(notification, None) for a flight in the air, (None, reason) for one filtered out.

    Never raises anything but InvalidState, whatever the input.
    """
    if not isinstance(state, dict):
        raise InvalidState(f"state is not a JSON object but {type(state).__name__}")
    try:
        position = _position(state)
        _require_identity(state)
        reason = _airborne_reason(*position)
        if reason is not None:
            return None, reason
        return _notification(state, *position[1:]), None
    except InvalidState:
        raise
    except (OverflowError, ValueError) as exc:  # e.g. 1e308 m does not fit an int of feet
        raise InvalidState(f"value out of range: {exc}") from None


def judge_records(records, rule) -> tuple[list[tuple[int, object]], dict[int, str], int]:
    """Split a batch of kafka_esm.InputRecords by `rule` (evaluate, or a rule built on it that returns
    (value, reason) and raises only InvalidState): ([(index, value) for each kept record],
    {index: reason for each record that could not be read or is malformed}, number filtered out).
    Both functions count a batch this way, so a failure means the same to each."""
    kept: list[tuple[int, object]] = []
    failures: dict[int, str] = {}
    filtered = 0
    for index, record in enumerate(records):
        if record.error is not None:
            failures[index] = record.error
            continue
        try:
            value, _reason = rule(record.state)
        except InvalidState as exc:
            failures[index] = f"invalid state: {exc}"
            continue
        if value is None:
            filtered += 1
            continue
        kept.append((index, value))
    return kept, failures, filtered
