"""Synthetic emergencies are planned per clock hour: one that begins late in an hour goes on across
the hour boundary (and across UTC midnight), on a simulated clock."""
from __future__ import annotations

from producer.synthetic import SyntheticFleet, emergencies_in_hour

MIDNIGHT_HOUR = 1_633_651_200 // 3600  # 2021-10-08 00:00 UTC


def crossing(seed: int, fleet_size: int, last_hour: int):
    """(hour, aircraft index, start, end, code) of an emergency planned in ``last_hour - k`` that runs past its hour."""
    for hour in range(last_hour, last_hour - 500, -1):
        for index, (start, end, code) in emergencies_in_hour(seed, fleet_size, hour).items():
            if end > (hour + 1) * 3600:
                return hour, index, start, end, code
    raise AssertionError("no emergency crosses an hour boundary in 500 hours")


def test_an_emergency_begun_late_in_an_hour_is_still_squawked_after_the_boundary():
    hour, index, start, end, code = crossing(seed=42, fleet_size=300, last_hour=MIDNIGHT_HOUR - 1)
    boundary = (hour + 1) * 3600
    fleet = SyntheticFleet(300, seed=42, start_time=start - 60)
    before = fleet.tick(boundary - 1.0)[index]["squawk"]
    after = fleet.tick(boundary + 1.0)[index]["squawk"]
    last = fleet.tick(end - 1.0)[index]["squawk"]
    over = fleet.tick(end + 1.0)[index]["squawk"]
    assert before == after == last == code and over != code


def test_the_plan_of_an_hour_does_not_depend_on_when_the_producer_started():
    # GIVEN a moment inside an emergency planned for 2021-10-08 00:00-01:00 UTC
    index, (start, end, code) = next(iter(emergencies_in_hour(42, 300, MIDNIGHT_HOUR).items()))
    t = (start + end) / 2
    # WHEN one fleet was started a day before and another a minute before midnight
    early = SyntheticFleet(300, seed=42, start_time=MIDNIGHT_HOUR * 3600 - 86_400)
    late = SyntheticFleet(300, seed=42, start_time=MIDNIGHT_HOUR * 3600 - 60)
    # THEN both squawk the same emergencies then (a replay and a live run of that hour agree)
    squawking = lambda fleet: {s["icao24"]: s["squawk"] for s in fleet.tick(t) if s["squawk"] in ("7500", "7600", "7700")}  # noqa: E731
    assert squawking(early) == squawking(late)
    assert squawking(late).get(late.aircraft[index].icao24) == code
