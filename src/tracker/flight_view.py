"""What the API shows of a position: the Flight object, units converted as the Lambda converts them
(feet, knots, feet per minute, rounded half up), times as ISO 8601 UTC with a Z."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from .records import Position

FEET_PER_METRE = 3.28084
KNOTS_PER_MPS = 1.943844
FPM_PER_MPS = 196.850394

# (name, lowest altitude in feet) of the bands GET /stats counts, highest first.
ALTITUDE_BANDS = (("40k+", 40_000), ("30-40k", 30_000), ("20-30k", 20_000), ("10-20k", 10_000), ("0-10k", None))


def round_half_up(value: float) -> int:
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def altitude_m(p: Position) -> float | None:
    return p.baro_altitude if p.baro_altitude is not None else p.geo_altitude


def altitude_feet(p: Position) -> int | None:
    metres = altitude_m(p)
    return None if metres is None else round_half_up(metres * FEET_PER_METRE)


def altitude_band(p: Position) -> str:
    feet = altitude_feet(p)
    if p.on_ground:
        return "ground"
    for name, floor in ALTITUDE_BANDS:
        if floor is None or (feet is not None and feet >= floor):
            return name
    return "0-10k"


def _convert(value: float | None, factor: float) -> int | None:
    return None if value is None else round_half_up(value * factor)


def flight(p: Position) -> dict:
    return {
        "icao24": p.icao24,
        "callsign": p.callsign,
        "origin_country": p.origin_country,
        "time_position": iso(p.time_position),
        "last_contact": iso(p.last_contact),
        "longitude": p.longitude,
        "latitude": p.latitude,
        "altitude_feet": altitude_feet(p),
        "velocity_knots": _convert(p.velocity, KNOTS_PER_MPS),
        "true_track": p.true_track,
        "vertical_rate_fpm": _convert(p.vertical_rate, FPM_PER_MPS),
        "on_ground": p.on_ground,
        "squawk": p.squawk,
        "category": p.category,
    }


def track_point(p: Position) -> dict:
    return {"time": iso(p.time_position), "longitude": p.longitude, "latitude": p.latitude,
            "altitude_feet": altitude_feet(p), "velocity_knots": _convert(p.velocity, KNOTS_PER_MPS),
            "true_track": p.true_track, "on_ground": p.on_ground}


def geojson(flights: list[dict]) -> dict:
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": f["icao24"],
                          "geometry": {"type": "Point", "coordinates": [f["longitude"], f["latitude"]]},
                          "properties": f} for f in flights if f["longitude"] is not None and f["latitude"] is not None]}


class FlightJsonCache:
    """Each aircraft's Flight JSON, encoded once per position instead of once per request (GET /flights
    with 10,000 aircraft would otherwise spend its time in the JSON encoder). Bounded: cleared whenever it
    holds more than `limit` aircraft."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._cache: dict[str, tuple[Position, str]] = {}

    def get(self, p: Position) -> str:
        held = self._cache.get(p.icao24)
        if held is not None and held[0] is p:
            return held[1]
        text = json.dumps(flight(p), separators=(",", ":"))
        if len(self._cache) >= self.limit:
            self._cache.clear()
        self._cache[p.icao24] = (p, text)
        return text
