"""OpenSky's credit budget: the price of a request, the start-up arithmetic, and a whole simulated day
against the local OpenSky stand-in keeping OpenSky's books, on a clock the test controls."""
from __future__ import annotations

import calendar
import json
import logging
import secrets
import time
from pathlib import Path

import pytest

from opensky_standin import CreditAccount, OpenSkyStandIn, ok
from pipeline_common.settings import ConfigError
from producer.credit_pacing import CreditPacer, bbox_area, next_midnight_utc, request_cost
from producer.opensky import OpenSkySettings
from producer.runner import SimulatedClock, run_producer
from producer.settings import ProducerConfig
from sinks import CountingSink

SNAPSHOT = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "opensky_states_all.json").read_text())
SWITZERLAND = (45.8389, 5.9962, 47.8229, 10.5226)
CLIENT_KEY = secrets.token_hex(12)  # made up per run: no credential-looking literal in the repository


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M")))


# ---------------------------------------------------------------- the price list
@pytest.mark.parametrize("bbox, credits", [
    (None, 4),                              # the whole world
    ((-90, -180, 90, 180), 4),              # the whole world as a box
    (SWITZERLAND, 1),                       # ~9 sq deg
    ((40, 0, 45, 5), 1),                    # exactly 25 sq deg
    ((40, 0, 45, 5.01), 2),                 # just over 25
    ((40, 0, 50, 10), 2),                   # exactly 100
    ((40, 0, 50, 10.1), 3),                 # just over 100
    ((30, 0, 50, 20), 3),                   # exactly 400
    ((30, 0, 50, 20.5), 4),                 # just over 400
    ((35, -10, 60, 30), 4),                 # Europe: 1,000 sq deg
])
def test_a_request_costs_what_opensky_charges_for_its_bounding_box(bbox, credits):
    assert request_cost(bbox) == credits
    assert CreditAccount.price({} if bbox is None else {k: [str(v)] for k, v in
                                zip(("lamin", "lomin", "lamax", "lomax"), bbox)}) == credits


def test_area_is_latitude_range_times_longitude_range():
    assert bbox_area(SWITZERLAND) == pytest.approx(1.984 * 4.5264, rel=1e-3)


def test_credits_are_assumed_to_renew_at_midnight_utc():
    assert next_midnight_utc(utc("2026-12-01 09:30")) == utc("2026-12-02 00:00")
    assert next_midnight_utc(utc("2026-12-02 00:00")) == utc("2026-12-03 00:00")


# ---------------------------------------------------------------- start-up arithmetic
def test_start_up_line_says_how_often_and_why(caplog):
    caplog.set_level(logging.INFO)
    with OpenSkyStandIn([ok(SNAPSHOT)], client_id="c", client_secret=CLIENT_KEY) as opensky:
        cfg = ProducerConfig(source="opensky", max_ticks=1, opensky=OpenSkySettings(
            api_url=opensky.api_url, token_url=opensky.token_url, client_id="c", client_secret=CLIENT_KEY))
        run_producer(cfg, sink=CountingSink(), clock=SimulatedClock(utc("2026-12-01 09:30")))
    assert ("OpenSky budget: global, 4 credits/request, 4,000/day (authenticated) -> one poll every 86.4 s "
            "(spread evenly over the day)") in caplog.text


def test_anonymous_small_box_is_one_credit_and_the_resolution_may_bind():
    pacer = CreditPacer(cost=request_cost(SWITZERLAND), daily_credits=8000, min_interval_s=5.0,
                        max_retry_after_s=300, now=utc("2026-12-01 00:00"))
    line = pacer.describe(SWITZERLAND, authenticated=True, configured_daily=8000)
    assert "1 credit/request, 8,000/day (as configured) -> one poll every 10.8 s" in line
    fast = CreditPacer(cost=1, daily_credits=100_000, min_interval_s=5.0, max_retry_after_s=300, now=0.0)
    assert "never faster than 5 s" in fast.describe(SWITZERLAND, True, 100_000)


def test_a_faster_interval_is_refused_with_the_arithmetic():
    env = {"OPENSKY_CLIENT_ID": "c", "OPENSKY_CLIENT_SECRET": "s"}
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env(env, source="opensky", interval_s=10.0)
    text = str(err.value)
    assert "PRODUCER_INTERVAL" in text and "costs 4 credits" in text
    assert "34,560 credits a day" in text and "4,000 credits/day x 1 = 4,000" in text
    assert "poll every 86.4 s or slower" in text


def test_the_share_kept_for_other_tools_counts_in_the_refusal():
    with pytest.raises(ConfigError, match="poll every 172.8 s or slower"):
        ProducerConfig.from_env({"OPENSKY_CLIENT_ID": "c", "OPENSKY_CLIENT_SECRET": "s",
                                 "OPENSKY_BUDGET_FRACTION": "0.5"}, source="opensky", interval_s=100.0)


def test_a_slower_interval_wins_and_a_short_run_may_poll_faster():
    env = {"OPENSKY_CLIENT_ID": "c", "OPENSKY_CLIENT_SECRET": "s"}
    assert ProducerConfig.from_env(env, source="opensky", interval_s=600.0).effective_interval_s == 600.0
    # 20 polls of 4 credits cannot exhaust 4,000: the requested cadence is harmless
    assert ProducerConfig.from_env(env, source="opensky", interval_s=10.0, max_ticks=20).effective_interval_s == 10.0


@pytest.mark.parametrize("env, variable", [
    ({"OPENSKY_BUDGET_FRACTION": "0"}, "OPENSKY_BUDGET_FRACTION"),
    ({"OPENSKY_BUDGET_FRACTION": "1.5"}, "OPENSKY_BUDGET_FRACTION"),
    ({"OPENSKY_DAILY_CREDITS": "0"}, "OPENSKY_DAILY_CREDITS"),
    ({"OPENSKY_DAILY_CREDITS": "many"}, "OPENSKY_DAILY_CREDITS"),
])
def test_bad_budget_settings_are_refused_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        ProducerConfig.from_env(env, source="opensky")


# ---------------------------------------------------------------- a simulated day
def run_day(*, start: str, hours: float, daily: int, bbox=None, authenticated=True, fraction=1.0,
            remaining: int | None = None, max_retry_after_s: float = 300.0):
    clock = SimulatedClock(utc(start))
    account = CreditAccount(daily, clock.now, remaining=remaining)
    creds = {"client_id": "pacer", "client_secret": CLIENT_KEY} if authenticated else {}
    with OpenSkyStandIn([ok(SNAPSHOT)], credits=account, **creds) as opensky:
        settings = OpenSkySettings(api_url=opensky.api_url, token_url=opensky.token_url, budget_fraction=fraction,
                                   daily_credits=daily, max_retry_after_s=max_retry_after_s, **creds)
        cfg = ProducerConfig(source="opensky", bbox=bbox, duration_s=hours * 3600, opensky=settings)
        stats = run_producer(cfg, sink=CountingSink(), clock=clock)
        requests = opensky.states_requests()
    return stats, account, requests


@pytest.mark.parametrize("daily, bbox, authenticated", [
    (400, None, False),                      # anonymous, whole world: 100 polls a day
    pytest.param(4000, None, True, marks=pytest.mark.slow),  # registered, whole world: 1,000 polls a day
    (400, (40, 0, 50, 10), False),           # anonymous, a 100 sq deg box at 2 credits: 200 polls a day
])
def test_over_a_simulated_day_credits_last_until_they_renew_and_little_is_left(daily, bbox, authenticated, caplog):
    caplog.set_level(logging.INFO)
    # GIVEN a producer started mid-morning, running through midnight and a whole next day
    stats, account, _ = run_day(start="2026-12-01 09:30", hours=14.5 + 24 + 0.01, daily=daily, bbox=bbox,
                                authenticated=authenticated)
    # THEN OpenSky never refused a request (never below zero credits) ...
    assert account.refused == []
    # ... and at both renewals almost nothing was left unspent (never idle with credits to spare)
    assert len(account.leftovers) == 2
    assert all(left <= 0.03 * daily for left in account.leftovers), account.leftovers
    # ... and the polls of the full day were spread over all of it, not bunched early
    day2 = [t for t, _ in account.charged if utc("2026-12-02 00:00") <= t < utc("2026-12-03 00:00")]
    assert day2[0] - utc("2026-12-02 00:00") < 0.02 * 86400 and utc("2026-12-03 00:00") - day2[-1] < 0.02 * 86400
    assert stats.errors == 0
    # the progress line says what is left and how long it lasts at this pace
    assert "credits remaining" in caplog.text and "usable, last until" in caplog.text


def test_a_share_is_kept_for_other_tools():
    stats, account, _ = run_day(start="2026-12-01 00:00", hours=24.01, daily=4000, fraction=0.5)
    assert account.refused == []
    assert len(account.leftovers) == 1 and 1950 <= account.leftovers[0] <= 2000 + 4


def test_credits_already_spent_by_another_tool_are_respected():
    # GIVEN another tool already spent 3,000 of today's 4,000 credits
    stats, account, _ = run_day(start="2026-12-01 12:00", hours=12.01, daily=4000, remaining=1000)
    # THEN the producer re-synchronised from X-Rate-Limit-Remaining: no 429, the rest spread to midnight
    assert account.refused == []
    assert account.leftovers[0] <= 0.03 * 4000
    before_midnight = [t for t, _ in account.charged if t < utc("2026-12-02 00:00")]
    assert 240 <= len(before_midnight) <= 250  # 1,000 credits / 4 per poll


def test_after_a_429_the_next_request_comes_when_the_credits_renew():
    # GIVEN an account with nothing left, and a producer allowed to wait as long as the server says
    stats, account, requests = run_day(start="2026-12-01 18:00", hours=6.5, daily=400, authenticated=False,
                                       remaining=0, max_retry_after_s=86_400)
    # THEN exactly one request was refused, and the next one came at midnight, not before
    assert len(account.refused) == 1
    assert account.charged[0][0] == pytest.approx(utc("2026-12-02 00:00"), abs=1)
