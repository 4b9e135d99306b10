"""The FastAPI application: REST routes, the WebSocket, the static map. OpenAPI at /docs."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ..filters import BadParameter
from .deps import AppState
from .routes import flights, health, live, stats

WEB = Path(__file__).resolve().parent.parent / "web"


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(title="flightpipe tracker", version="1.0.0",
                  description="Live aircraft from the aviation-data topic and their history in PostgreSQL.")
    app.state.tracker = state

    @app.exception_handler(BadParameter)
    async def bad_parameter(_request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    for module in (flights, stats, health, live):
        app.include_router(module.router)
    if WEB.is_dir():  # the map and stats pages (tracker-map); mounted last so the API routes win
        app.mount("/", StaticFiles(directory=WEB, html=True), name="web")
    return app
