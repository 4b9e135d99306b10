"""GET /flights (the live picture, filtered), /flights/{icao24} and /flights/{icao24}/track (history)."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ... import store
from ...filters import BadParameter, FlightFilter, parse_icao24, parse_int, parse_since
from ...flight_view import LiveView, flight, track_point
from ..deps import DbDep, LiveDep, StateDep

router = APIRouter(tags=["flights"])

MAX_TRACK_POINTS = 10_000


@router.get("/flights", summary="Aircraft in the live picture, filtered",
            responses={304: {"description": "unchanged since If-None-Match (the live picture has not moved)"}})
async def list_flights(state: StateDep, request: Request,
                       bbox: str | None = Query(None, description="lamin,lomin,lamax,lomax in degrees"),
                       country: str | None = Query(None, description="origin country, exact (case-insensitive)"),
                       callsign: str | None = Query(None, description="callsign prefix"),
                       airborne: str | None = Query(None, description="true: in the air only; false: on the ground only"),
                       min_altitude_ft: str | None = Query(None, description="lowest altitude in feet"),
                       format: str = Query("json", description="json or geojson")) -> Response:
    if format not in ("json", "geojson"):
        raise BadParameter("format", f"{format!r} is not json or geojson")
    flt = FlightFilter.from_params(bbox, country, callsign, airborne, min_altitude_ft)
    if_none_match = request.headers.get("if-none-match", "")
    # The live picture as of the last push interval at most (see FlightsView), encoded once, not per
    # request. Answered on the event loop when that is already done; a new snapshot, a first encoding
    # or a filter over every aircraft (milliseconds with 10,000) goes to a worker thread instead.
    view = state.flights_view.ready()
    if view is not None and flt.empty and view.encoded(format == "geojson"):
        return _answer(view, flt, format, if_none_match)
    return await run_in_threadpool(lambda: _answer(state.flights_view.current(), flt, format, if_none_match))


def _answer(view: LiveView, flt: FlightFilter, format: str, if_none_match: str) -> Response:
    headers = {"ETag": view.etag, "Cache-Control": "no-cache"}
    if view.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    if format == "geojson":
        positions = None if flt.empty else [p for p in view.positions if flt.matches(p)]
        return Response(view.geojson_body(positions), media_type="application/geo+json", headers=headers)
    texts = None if flt.empty else [t for p, t in zip(view.positions, view.texts) if flt.matches(p)]
    return Response(view.json_body(texts), media_type="application/json", headers=headers)


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
