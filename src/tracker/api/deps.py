"""What the routes share, injected with Depends: settings, the live picture, the counters, a database
connection from the pool, and the Kafka health the consumer reports."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Callable

import psycopg
from fastapi import Depends, HTTPException, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from ..alerts_feed import AlertFeed
from ..consumer import TrackerStats
from ..flight_view import FlightJsonCache, FlightsView
from ..geofences import TrackerGeofences
from ..live import LivePicture
from ..settings import TrackerConfig


@dataclass
class AppState:
    config: TrackerConfig
    live: LivePicture
    stats: TrackerStats
    pool: ConnectionPool
    # () -> None when the Kafka consumer is healthy, else the reason (the consumer thread knows).
    kafka_problem: Callable[[], str | None]
    json_cache: FlightJsonCache
    # The map's fences and alerts (GET /geofences, GET /alerts, alerts on /ws/flights); None: not served.
    alerts: AlertFeed | None = None
    geofences: TrackerGeofences | None = None
    # GET /flights' snapshot of the live picture, taken at most once per WebSocket push interval.
    flights_view: FlightsView | None = None

    def __post_init__(self) -> None:
        if self.flights_view is None:
            self.flights_view = FlightsView(self.live, self.json_cache, self.config.ws_interval_s)


def get_state(request: Request) -> AppState:
    return request.app.state.tracker


def get_live(state: Annotated[AppState, Depends(get_state)]) -> LivePicture:
    return state.live


def get_db(state: Annotated[AppState, Depends(get_state)]) -> Iterator[psycopg.Connection]:
    try:
        with state.pool.connection(timeout=5) as conn:
            yield conn
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable):
        raise  # the server is up but busy: answered by the app's handler (503 with the reason, tracker.api.app)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise HTTPException(status_code=503, detail=f"database unavailable: {type(exc).__name__}") from None


StateDep = Annotated[AppState, Depends(get_state)]
LiveDep = Annotated[LivePicture, Depends(get_live)]
DbDep = Annotated[psycopg.Connection, Depends(get_db)]
