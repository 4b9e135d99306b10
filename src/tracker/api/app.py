"""The FastAPI application: REST routes, the WebSocket, the static map. OpenAPI at /docs."""
from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..filters import BadParameter
from .deps import AppState
from .routes import alerts, analytics, flights, geofences, health, live, stats
from .web import mount_web

logger = logging.getLogger(__name__)


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(title="flightpipe tracker", version="1.0.0",
                  description="Live aircraft from the aviation-data topic and their history in PostgreSQL.")
    app.state.tracker = state

    @app.exception_handler(BadParameter)
    async def bad_parameter(_request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(psycopg.errors.QueryCanceled)
    @app.exception_handler(psycopg.errors.LockNotAvailable)
    async def database_busy(request: Request, exc: psycopg.Error) -> JSONResponse:
        # statement_timeout / lock_timeout of the API's connections (tracker.service.api_session): the
        # database is busy (a long query, the writer's DDL); say so now rather than hang.
        which = "lock_timeout" if isinstance(exc, psycopg.errors.LockNotAvailable) else "statement_timeout"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("%s %s: database busy (%s): %s", request.method, request.url.path, which, reason)
        return JSONResponse(status_code=503, headers={"Retry-After": "1"},
                            content={"detail": f"database busy, try again: {reason} ({which})"})

    for module in (flights, stats, health, live, analytics, alerts, geofences):
        app.include_router(module.router)
    mount_web(app)  # the map, the stats page and /vendor/leaflet; last, so the API routes win
    return app
