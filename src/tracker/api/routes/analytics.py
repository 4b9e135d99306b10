"""GET /analytics/hourly: the hourly aggregates of migration 0010 (per country, airline, altitude band)
for the stats page, refreshing the materialized views first when they are older than a minute."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import psycopg
from fastapi import APIRouter, Query

from ...filters import BadParameter
from ..deps import DbDep

logger = logging.getLogger(__name__)
router = APIRouter(tags=["analytics"])

MAX_HOURS = 48  # the materialized views keep the last 48 hours (0010_analytics.sql)
REFRESH_AFTER_S = 60.0
REFRESH_TIMEOUT_S = 120.0
# Two API workers asking at once: one refreshes, the other serves what is there.
_REFRESH_LOCK = 0x616E6C79  # "anly"

_QUERIES = {
    "by_country": "SELECT hour, country, flights, positions FROM analytics_hourly_country "
                  "WHERE hour > now() - make_interval(hours => %s) ORDER BY hour, country",
    "by_airline": "SELECT hour, airline, flights, positions FROM analytics_hourly_airline "
                  "WHERE hour > now() - make_interval(hours => %s) ORDER BY hour, airline",
    "by_altitude_band": "SELECT hour, band, flights, positions FROM analytics_hourly_altitude_band "
                        "WHERE hour > now() - make_interval(hours => %s) ORDER BY hour, band",
}


def parse_hours(raw: str | None) -> int:
    if raw is None or raw == "":
        return 24
    try:
        hours = int(raw)
    except ValueError:
        raise BadParameter("hours", f"{raw!r} is not a whole number of hours (1..{MAX_HOURS})") from None
    if not 1 <= hours <= MAX_HOURS:
        raise BadParameter("hours", f"{hours} is out of range: the analytics keep 1..{MAX_HOURS} hours")
    return hours


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def refresh_if_stale(conn: psycopg.Connection, refresh_after_s: float = REFRESH_AFTER_S) -> datetime | None:
    """Run analytics_refresh() when the last refresh is older than refresh_after_s; returns the refresh time."""
    with conn.transaction():
        # The refresh rebuilds 48 hours of aggregates: longer than an API read may take (statement_timeout).
        conn.execute("SET LOCAL statement_timeout = %s" % int(REFRESH_TIMEOUT_S * 1000))
        row = conn.execute(
            "SELECT refreshed_at, now() - refreshed_at > make_interval(secs => %s) "
            "FROM analytics_refresh WHERE name = 'hourly'", (refresh_after_s,)).fetchone()
        if row is not None and not row[1]:
            return row[0]
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_REFRESH_LOCK,)).fetchone()[0]:
            return row[0] if row else None
        refreshed = conn.execute("SELECT analytics_refresh()").fetchone()[0]
        logger.info("analytics views refreshed")
        return refreshed


def hourly(conn: psycopg.Connection, hours: int, refresh_after_s: float = REFRESH_AFTER_S) -> dict:
    refreshed_at = refresh_if_stale(conn, refresh_after_s)
    body: dict = {"hours": hours, "refreshed_at": _iso(refreshed_at)}
    for key, query in _QUERIES.items():
        body[key] = [{"hour": _iso(hour), "name": name, "flights": flights, "positions": positions}
                     for hour, name, flights, positions in conn.execute(query, (hours,))]
    return body


@router.get("/analytics/hourly", summary="Hourly aircraft and positions per country, airline and altitude band")
def get_hourly(conn: DbDep, hours: str | None = Query(None, description=f"hours back, 1..{MAX_HOURS} (default 24)")) -> dict:
    return hourly(conn, parse_hours(hours))
