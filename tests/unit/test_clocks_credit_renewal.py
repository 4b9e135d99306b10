"""OpenSky's credits renewing at another moment than the 00:00 UTC the producer assumes (OpenSky does
not document it): the producer learns the real moment on the first day, on a simulated clock."""
from __future__ import annotations

import calendar
import json
import time
from pathlib import Path

import pytest

from opensky_standin import CreditAccount, OpenSkyStandIn, ok
from producer.opensky import OpenSkySettings
from producer.runner import SimulatedClock, run_producer
from producer.settings import ProducerConfig
from sinks import CountingSink

SNAPSHOT = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "opensky_states_all.json").read_text())
DAY_S = 86_400
DAILY = 400  # anonymous: 100 global polls a day, one every 864 s


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M")))


class ShiftedAccount(CreditAccount):
    """OpenSky's books, renewing ``shift_s`` after (or before, if negative) 00:00 UTC."""

    def __init__(self, daily: int, now, shift_s: float):
        super().__init__(daily, now)
        self.renews_at += shift_s
        if self.renews_at - DAY_S > now():
            self.renews_at -= DAY_S


def run_days(shift_h: float, days: float = 2.6):
    clock = SimulatedClock(utc("2026-12-01 09:30"))
    account = ShiftedAccount(DAILY, clock.now, shift_h * 3600)
    with OpenSkyStandIn([ok(SNAPSHOT)], credits=account) as opensky:
        settings = OpenSkySettings(api_url=opensky.api_url, token_url=opensky.token_url, daily_credits=DAILY)
        stats = run_producer(ProducerConfig(source="opensky", duration_s=days * DAY_S, opensky=settings),
                             sink=CountingSink(), clock=clock)
        requests = opensky.states_requests()
    return stats, account, requests


def test_credits_renewed_earlier_than_midnight_are_noticed_and_the_next_days_spent_to_the_real_moment():
    # GIVEN an account that renews at 20:00 UTC, four hours before the producer assumes
    _stats, account, _ = run_days(-4)
    # THEN nothing was ever refused; the first renewal came with credits left (the producer could
    # not know), every later one found them spent: the producer paces to 20:00 from then on
    assert account.refused == []
    assert len(account.leftovers) == 3
    assert account.leftovers[0] > 0.1 * DAILY
    assert all(left <= 0.03 * DAILY for left in account.leftovers[1:]), account.leftovers


def test_credits_renewed_later_than_midnight_cost_one_night_of_429s_then_none():
    # GIVEN an account that renews at 02:00 UTC, two hours after the producer assumes
    _stats, account, requests = run_days(2)
    # THEN only the first night was refused, and only until 02:00; each 429's wait was honoured
    # (capped at OPENSKY_MAX_RETRY_AFTER, 300 s), so the refusals are 5 minutes apart
    first_night = (utc("2026-12-02 00:00"), utc("2026-12-02 02:00"))
    assert account.refused and all(first_night[0] <= t < first_night[1] for t in account.refused)
    assert all(b - a == pytest.approx(300, abs=1) for a, b in zip(account.refused, account.refused[1:]))
    # ... and afterwards the producer knew the real moment: nothing left over at the later renewals
    assert all(left <= 0.03 * DAILY for left in account.leftovers[1:]), account.leftovers
    assert [r.status for r in requests].count(429) == len(account.refused)
