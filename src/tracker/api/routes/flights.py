"""GET /flights (the live picture, filtered), /flights/{icao24} and /flights/{icao24}/track (history)."""
from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Query, Response

from ... import store
from ...filters import BadParameter, FlightFilter, parse_icao24, parse_int, parse_since
from ...flight_view import flight, geojson, iso, track_point
from ...live import utc_now
from ..deps import DbDep, LiveDep, StateDep

router = APIRouter(tags=["flights"])

MAX_TRACK_POINTS = 10_000


@router.get("/flights", summary="Aircraft in the live picture, filtered")
def list_flights(state: StateDep,
                 bbox: str | None = Query(None, description="lamin,lomin,lamax,lomax in degrees"),
                 country: str | None = Query(None, description="origin country, exact (case-insensitive)"),
                 callsign: str | None = Query(None, description="callsign prefix"),
                 airborne: str | None = Query(None, description="true: in the air only; false: on the ground only"),
                 min_altitude_ft: str | None = Query(None, description="lowest altitude in feet"),
                 format: str = Query("json", description="json or geojson")) -> Response:
    if format not in ("json", "geojson"):
        raise BadParameter("format", f"{format!r} is not json or geojson")
    flt = FlightFilter.from_params(bbox, country, callsign, airborne, min_altitude_ft)
    _seq, positions = state.live.snapshot()
    if not flt.empty:
        positions = [p for p in positions if flt.matches(p)]
    now = iso(utc_now())
    if format == "geojson":
        body = json.dumps(geojson([flight(p) for p in positions]), separators=(",", ":"))
        return Response(body, media_type="application/geo+json")
    # Pre-encoded per aircraft (see FlightJsonCache): the response is a join, not 10,000 encodes.
    cache = state.json_cache
    body = f'{{"count":{len(positions)},"time":"{now}","flights":[{",".join(cache.get(p) for p in positions)}]}}'
    return Response(body, media_type="application/json")


@router.get("/flights/{icao24}", summary="One aircraft: live, else its latest stored position")
def one_flight(icao24: str, live: LiveDep, db: DbDep) -> dict:
    key = parse_icao24(icao24)
    position = live.get(key) or store.latest(db, key)
    if position is None:
        raise HTTPException(status_code=404, detail=f"icao24 {key} is not known (never heard, or past retention)")
    return flight(position)


@router.get("/flights/{icao24}/track", summary="One aircraft's stored positions, oldest first")
def flight_track(icao24: str, db: DbDep,
                 since: str | None = Query(None, description="ISO 8601 or Unix seconds"),
                 limit: str | None = Query(None, description=f"most recent points kept, 1..{MAX_TRACK_POINTS}")) -> dict:
    key = parse_icao24(icao24)
    start = parse_since(since)
    count = parse_int(limit, "limit", 1, MAX_TRACK_POINTS) or 1000
    points = store.track(db, key, start, count)
    if not points and store.latest(db, key) is None:
        raise HTTPException(status_code=404, detail=f"icao24 {key} has no stored positions")
    return {"icao24": key, "points": [track_point(p) for p in points]}
