"""GET /stats: counts over the live picture and the consumer's counters."""
from __future__ import annotations

from collections import Counter

from fastapi import APIRouter

from ...flight_view import ALTITUDE_BANDS, altitude_band
from ..deps import StateDep

router = APIRouter(tags=["stats"])


@router.get("/stats", summary="Aircraft now, by country and altitude band; ingest rate and lag")
def get_stats(state: StateDep) -> dict:
    _seq, positions = state.live.snapshot()
    bands = Counter({"ground": 0, **{name: 0 for name, _ in reversed(ALTITUDE_BANDS)}})
    countries: Counter = Counter()
    on_ground = 0
    for p in positions:
        bands[altitude_band(p)] += 1
        countries[p.origin_country or "unknown"] += 1
        on_ground += p.on_ground
    s = state.stats
    return {"aircraft": len(positions), "airborne": len(positions) - on_ground, "on_ground": on_ground,
            "by_country": dict(countries.most_common()), "by_altitude_band": dict(bands),
            "positions_per_s": round(s.positions_per_s(), 1), "positions_total": s.positions_total,
            "past_retention": s.past_retention, "consumer_lag": s.consumer_lag}
