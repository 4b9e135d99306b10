"""Query parameters of GET /flights and the WebSocket -> a filter over positions. Pure functions:
every bad value raises BadParameter naming the parameter, which the API answers with 400."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from .flight_view import altitude_feet
from .records import Position, valid_icao24


class BadParameter(ValueError):
    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter


@dataclass(frozen=True)
class BBox:
    lamin: float
    lomin: float
    lamax: float
    lomax: float

    def contains(self, latitude: float | None, longitude: float | None) -> bool:
        if latitude is None or longitude is None:
            return False
        if not self.lamin <= latitude <= self.lamax:
            return False
        if self.lomin <= self.lomax:
            return self.lomin <= longitude <= self.lomax
        return longitude >= self.lomin or longitude <= self.lomax  # crosses the antimeridian


def _finite(parameter: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(parameter, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadParameter(parameter, f"{text!r} is not a finite number")
    return value


def parse_bbox(text: str | None, parameter: str = "bbox") -> BBox | None:
    """'lamin,lomin,lamax,lomax' (degrees, as OpenSky's /states/all); lomin > lomax crosses the antimeridian."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise BadParameter(parameter, f"expected lamin,lomin,lamax,lomax (4 numbers), got {len(parts)} value(s)")
    lamin, lomin, lamax, lomax = (_finite(parameter, p.strip()) for p in parts)
    for name, value, limit in (("lamin", lamin, 90), ("lamax", lamax, 90), ("lomin", lomin, 180), ("lomax", lomax, 180)):
        if not -limit <= value <= limit:
            raise BadParameter(parameter, f"{name}={value} is outside -{limit}..{limit}")
    if lamin > lamax:
        raise BadParameter(parameter, f"lamin={lamin} is above lamax={lamax}")
    return BBox(lamin, lomin, lamax, lomax)


def parse_bool(text: str | None, parameter: str) -> bool | None:
    if text is None or text == "":
        return None
    low = text.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise BadParameter(parameter, f"{text!r} is not true or false")


def parse_int(text: str | None, parameter: str, minimum: int, maximum: int) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(parameter, f"{text!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise BadParameter(parameter, f"{value} is outside {minimum}..{maximum}")
    return value


def parse_icao24(text: str) -> str:
    value = text.strip().lower()
    if not valid_icao24(value):
        raise BadParameter("icao24", f"{text!r} is not 6 hexadecimal digits")
    return value


def parse_since(text: str | None) -> datetime | None:
    """ISO 8601 (a missing zone is UTC) or Unix seconds."""
    if text is None or text == "":
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadParameter("since", f"{text!r} is neither ISO 8601 nor Unix seconds") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if not math.isfinite(seconds) or not 0 <= seconds <= 4102444800:
        raise BadParameter("since", f"{text!r} is not a Unix time in seconds")
    return datetime.fromtimestamp(seconds, timezone.utc)


@dataclass(frozen=True)
class FlightFilter:
    bbox: BBox | None = None
    country: str | None = None
    callsign: str | None = None       # prefix, case-insensitive
    airborne: bool | None = None
    min_altitude_ft: int | None = None

    @classmethod
    def from_params(cls, bbox=None, country=None, callsign=None, airborne=None, min_altitude_ft=None) -> "FlightFilter":
        return cls(bbox=parse_bbox(bbox), country=(country or None),
                   callsign=(callsign.strip().upper() or None) if callsign else None,
                   airborne=parse_bool(airborne, "airborne"),
                   min_altitude_ft=parse_int(min_altitude_ft, "min_altitude_ft", -2000, 200_000))

    @property
    def empty(self) -> bool:
        return self == FlightFilter()

    def matches(self, p: Position) -> bool:
        if self.bbox is not None and not self.bbox.contains(p.latitude, p.longitude):
            return False
        if self.country is not None and (p.origin_country or "").lower() != self.country.lower():
            return False
        if self.callsign is not None and not (p.callsign or "").upper().startswith(self.callsign):
            return False
        if self.airborne is not None and p.on_ground == self.airborne:
            return False
        if self.min_altitude_ft is not None:
            feet = altitude_feet(p)
            if feet is None or feet < self.min_altitude_ft:
                return False
        return True
