"""Synthetic emergencies: rare (a few aircraft per hour), deterministic from the seed, over when they end,
and seen by the alert rules as exactly one EMERGENCY per aircraft and emergency."""
from __future__ import annotations

from collections import Counter

from flight_domain.alert_rules import EMERGENCY, EMERGENCY_SQUAWKS, Watchlist, fold, observe
from producer.synthetic import EMERGENCIES_PER_HOUR, SyntheticFleet, emergencies_in_hour

HOUR = 1_750_000_000 // 3600


def test_a_few_aircraft_per_hour_deterministic_from_the_seed():
    plans = [emergencies_in_hour(42, 1500, HOUR + h) for h in range(48)]
    per_hour = [len(p) for p in plans]
    assert all(1 <= n <= EMERGENCIES_PER_HOUR for n in per_hour)
    assert plans[0] == emergencies_in_hour(42, 1500, HOUR)          # same seed, same hour: same plan
    assert plans[0] != emergencies_in_hour(43, 1500, HOUR)          # another seed: another plan
    codes = Counter(code for p in plans for (_s, _e, code) in p.values())
    assert set(codes) <= set(EMERGENCY_SQUAWKS) and codes["7700"] > codes["7500"]
    for h, plan in enumerate(plans):
        for start, end, _code in plan.values():
            assert (HOUR + h) * 3600 <= start < (HOUR + h + 1) * 3600 and 600 <= end - start <= 1200


def test_the_fleet_squawks_the_emergency_only_inside_its_window_and_raises_one_alert():
    fleet = SyntheticFleet(300, seed=7, start_time=HOUR * 3600.0)
    index, (start, end, code) = next(iter(emergencies_in_hour(7, 300, HOUR + 1).items()))
    icao24 = fleet.aircraft[index].icao24
    squawks, states, alerts = {}, {}, []
    for t in range(int(start) - 120, int(end) + 120, 10):
        state = fleet.tick(float(t))[index]
        squawks[t] = state["squawk"]
        # on the ground or in the air, the squawk is the plan's; alerts only for flights in the air
        obs, _ = observe({**state, "on_ground": False, "baro_altitude": state["baro_altitude"] or 1000.0})
        final, raised, _ = fold(states.get(icao24), [obs], (), Watchlist(), 1800)
        states[icao24] = final
        alerts += raised
    inside = [s for t, s in squawks.items() if start <= t < end]
    outside = [s for t, s in squawks.items() if not start <= t < end]
    assert set(inside) == {code} and code not in outside
    assert [(a.alert_type, a.squawk) for a in alerts] == [(EMERGENCY, code)]
