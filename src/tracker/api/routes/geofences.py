"""GET /geofences: the fences flight-alerts uses, as GeoJSON for the map, with an ETag (the S3
object's) so a page that polls gets `304 Not Modified` until `make geofences` changes them."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ...geofences import GeofencesUnavailable
from ..deps import StateDep

router = APIRouter(tags=["alerts"])


@router.get("/geofences", responses={304: {"description": "unchanged since If-None-Match"},
                                     503: {"description": "the fences cannot be read; detail says why"}})
def geofences(state: StateDep, request: Request) -> Response:
    if state.geofences is None:
        return JSONResponse(status_code=503, content={"detail": "geofences: the tracker runs without them"})
    try:
        collection, etag = state.geofences.current()  # a blocking S3 read: FastAPI runs this in a thread
    except GeofencesUnavailable as exc:
        return JSONResponse(status_code=503, content={"detail": f"geofences unavailable: {exc}"},
                            headers={"Cache-Control": "no-store"})
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return JSONResponse(content=collection, headers=headers, media_type="application/geo+json")
