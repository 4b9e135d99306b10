"""The FastAPI application: REST routes, the WebSocket, the static map. OpenAPI at /docs."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..filters import BadParameter
from .deps import AppState
from .routes import alerts, analytics, flights, geofences, health, live, stats
from .web import mount_web


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(title="flightpipe tracker", version="1.0.0",
                  description="Live aircraft from the aviation-data topic and their history in PostgreSQL.")
    app.state.tracker = state

    @app.exception_handler(BadParameter)
    async def bad_parameter(_request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    for module in (flights, stats, health, live, analytics, alerts, geofences):
        app.include_router(module.router)
    mount_web(app)  # the map, the stats page and /vendor/leaflet; last, so the API routes win
    return app
