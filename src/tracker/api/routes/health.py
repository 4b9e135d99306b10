"""GET /health: Kafka (as the consumer last saw it), the database (asked now), lag; 503 when a part is down."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from ..deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="ok, or degraded (HTTP 503) naming the part that is down")
def get_health(state: StateDep) -> JSONResponse:
    kafka_problem = state.kafka_problem()
    db_problem = None
    try:
        with state.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
    except (PoolTimeout, psycopg.Error) as exc:
        db_problem = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    ok = kafka_problem is None and db_problem is None
    body = {"status": "ok" if ok else "degraded",
            "kafka": {"ok": kafka_problem is None, "error": kafka_problem},
            "database": {"ok": db_problem is None, "error": db_problem},
            "consumer_lag": state.stats.consumer_lag}
    return JSONResponse(body, status_code=200 if ok else 503)
