"""GET /alerts: the recent alerts of FlightAlerts as the tracker's own queue received them (newest
first, each once), and whether the feed is working. New ones are also pushed on /ws/flights."""
from __future__ import annotations

from fastapi import APIRouter, Query

from flight_domain.alert_rules import ALERT_TYPES

from ...filters import BadParameter, parse_int, parse_since
from ...flight_view import iso
from ...live import utc_now
from ..deps import StateDep

router = APIRouter(tags=["alerts"])


def parse_types(text: str | None) -> set[str] | None:
    if not text:
        return None
    types = {t.strip().upper() for t in text.split(",") if t.strip()}
    unknown = sorted(types - set(ALERT_TYPES))
    if unknown:
        raise BadParameter("type", f"{', '.join(unknown)} is not one of {', '.join(ALERT_TYPES)}")
    return types


@router.get("/alerts")
def recent_alerts(state: StateDep,
                  since: str | None = Query(None, description="only alerts at or after this position time: "
                                                              "ISO 8601 or Unix seconds"),
                  type: str | None = Query(None, description="comma-separated alert types, e.g. EMERGENCY"),  # noqa: A002
                  limit: str | None = Query(None, description="at most this many (1..10000, default 100)")) -> dict:
    start, types = parse_since(since), parse_types(type)
    count = parse_int(limit, "limit", 1, 10_000) or 100
    feed = state.alerts
    if feed is None:
        status = {"enabled": False, "ok": False, "error": "the tracker runs without an alerts feed"}
        alerts: list[dict] = []
    else:
        status = feed.status()
        alerts = feed.buffer.recent(start.timestamp() if start else None, types, count)
    return {"count": len(alerts), "time": iso(utc_now()), "feed": status, "alerts": alerts}
