"""What the API shows of a position: the Flight object, units converted as the Lambda converts them
(feet, knots, feet per minute, rounded half up), times as ISO 8601 UTC with a Z."""
from __future__ import annotations

import math
import secrets
import threading
import time
from datetime import datetime, timezone

import orjson

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


def _compact(encoded: bytes) -> bytes:
    """A copy of exactly its length: what orjson.dumps returns keeps its ~8 KB work buffer allocated
    (measured: 10,000 cached aircraft took 78 MB instead of 3.5 MB)."""
    return bytes(memoryview(encoded))


class FlightJsonCache:
    """Each aircraft's Flight JSON (and GeoJSON Feature), encoded once per position instead of once per
    request (GET /flights with 10,000 aircraft would otherwise spend its time in the JSON encoder).
    Bounded: cleared whenever it holds more than `limit` aircraft. Safe to share between threads (each
    operation on the dict is atomic; two threads encoding the same position store equal texts)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._cache: dict[str, list] = {}  # icao24 -> [position, Flight JSON, Feature JSON or None]

    def _entry(self, p: Position) -> list:
        held = self._cache.get(p.icao24)
        if held is not None and held[0] is p:
            return held
        held = [p, _compact(orjson.dumps(flight(p))), None]
        if len(self._cache) >= self.limit:
            self._cache.clear()
        self._cache[p.icao24] = held
        return held

    def get_bytes(self, p: Position) -> bytes:
        return self._entry(p)[1]

    def get(self, p: Position) -> str:
        return self._entry(p)[1].decode()

    def feature(self, p: Position) -> bytes | None:
        """The position as a GeoJSON Feature (None without a position), the Flight as its properties."""
        held = self._entry(p)
        if held[2] is None and p.longitude is not None and p.latitude is not None:
            held[2] = _compact(orjson.dumps({"type": "Feature", "id": p.icao24,
                                             "geometry": {"type": "Point", "coordinates": [p.longitude, p.latitude]},
                                             "properties": orjson.Fragment(held[1])}))
        return held[2]


class LiveView:
    """The live picture at one moment as the API serves it: the positions, their Flight JSON, and the
    whole unfiltered GET /flights body, encoded at most once (on first use)."""

    __slots__ = ("seq", "time", "etag", "positions", "texts", "_cache", "_lock", "_body", "_geojson")

    def __init__(self, seq: int, time_iso: str, etag: str, positions: list[Position], cache: FlightJsonCache):
        self.seq, self.time, self.etag, self.positions, self._cache = seq, time_iso, etag, positions, cache
        self.texts = [cache.get_bytes(p) for p in positions]
        self._lock = threading.Lock()
        self._body = self._geojson = None

    def encoded(self, geojson: bool = False) -> bool:
        """Whether the unfiltered body of that format is already encoded."""
        return (self._geojson if geojson else self._body) is not None

    def json_body(self, texts: list[bytes] | None = None) -> bytes:
        """GET /flights as JSON: every aircraft (computed once per view), or those of `texts`."""
        if texts is None:
            with self._lock:
                if self._body is None:
                    self._body = self.json_body(self.texts)
                return self._body
        head = b'{"count":%d,"time":"%s","flights":[' % (len(texts), self.time.encode())
        return b"".join((head, b",".join(texts), b"]}"))

    def geojson_body(self, positions: list[Position] | None = None) -> bytes:
        """GET /flights as a GeoJSON FeatureCollection: every aircraft with a position, or those of `positions`."""
        if positions is None:
            with self._lock:
                if self._geojson is None:
                    self._geojson = self.geojson_body(self.positions)
                return self._geojson
        features = [f for f in map(self._cache.feature, positions) if f is not None]
        return b"".join((b'{"type":"FeatureCollection","features":[', b",".join(features), b"]}"))


class FlightsView:
    """What GET /flights serves: a LiveView taken at most once per `max_age_s` while the picture changes
    (at most one WebSocket push interval old, so the REST answer and the pushes agree), and kept as
    long as nothing changes. 10,000 aircraft are then joined and encoded once per interval, not once
    per request, and a client that sends the view's ETag back gets `304 Not Modified`."""

    def __init__(self, live, cache: FlightJsonCache, max_age_s: float = 1.0, clock=time.monotonic) -> None:
        self.live, self.cache, self.max_age_s, self._clock = live, cache, max_age_s, clock
        self._lock = threading.Lock()
        self._view: LiveView | None = None
        self._taken = 0.0
        self._boot = secrets.token_hex(4)  # a restarted tracker counts from 0 again: its ETags differ

    def ready(self) -> LiveView | None:
        """The current view when taking it costs nothing (no new snapshot due), else None."""
        view = self._view
        if view is None or (view.seq != self.live.seq and self._clock() - self._taken >= self.max_age_s):
            return None
        return view

    def current(self) -> LiveView:
        with self._lock:
            view, now = self._view, self._clock()
            if view is None or (view.seq != self.live.seq and now - self._taken >= self.max_age_s):
                seq, positions = self.live.snapshot()
                view = LiveView(seq, iso(datetime.now(timezone.utc)), f'"{self._boot}-{seq}"', positions, self.cache)
                self._view, self._taken = view, now
            return view
