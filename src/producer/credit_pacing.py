"""OpenSky's credit budget: what one /states/all request costs, and when to poll so the day's credits last.

OpenSky charges every /states/all request by the area of its bounding box and gives each account a
daily allowance (REST documentation, "Limitations" / "API Credits"): 1 credit up to 25 square
degrees, 2 up to 100, 3 up to 400, 4 above that or for the whole world; 400 credits a day
anonymous, 4,000 authenticated, 8,000 for active feeders. Polling at the data resolution spends an
anonymous global day in 17 minutes, so the producer spreads what is left evenly over the time until
the allowance renews, re-synchronising from X-Rate-Limit-Remaining on every answer and from
X-Rate-Limit-Retry-After-Seconds on a 429.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
ANONYMOUS_DAILY_CREDITS = 400
AUTHENTICATED_DAILY_CREDITS = 4_000
FEEDER_DAILY_CREDITS = 8_000
# (largest bounding-box area in square degrees, credits); anything larger, or no box, costs GLOBAL_COST.
COST_TIERS: tuple[tuple[float, int], ...] = ((25.0, 1), (100.0, 2), (400.0, 3))
GLOBAL_COST = 4


def bbox_area(bbox: Sequence[float]) -> float:
    """Square degrees as OpenSky counts them: latitude range x longitude range (not the true area)."""
    lamin, lomin, lamax, lomax = bbox
    return (lamax - lamin) * (lomax - lomin)


def request_cost(bbox: Sequence[float] | None) -> int:
    """Credits one /states/all request costs. Without a box it is the global price, icao24 filter or not:
    the documentation prices only boxes, so a filter alone is taken at the highest price (never spends
    more than planned)."""
    if bbox is None:
        return GLOBAL_COST
    area = bbox_area(bbox)
    for limit, credits in COST_TIERS:
        if area <= limit:
            return credits
    return GLOBAL_COST


def default_daily_credits(authenticated: bool) -> int:
    return AUTHENTICATED_DAILY_CREDITS if authenticated else ANONYMOUS_DAILY_CREDITS


def next_midnight_utc(now: float) -> float:
    """OpenSky does not document when the allowance renews; midnight UTC is the assumption until a
    429's Retry-After tells the real moment."""
    return (math.floor(now / DAY_S) + 1) * DAY_S


def sustainable_interval_s(cost: int, credits_per_day: float) -> float:
    """Seconds between polls that spend exactly ``credits_per_day`` in a day."""
    return DAY_S * cost / credits_per_day if credits_per_day > 0 else math.inf


def describe_request(bbox: Sequence[float] | None) -> str:
    if bbox is None:
        return "global"
    return f"bbox {','.join(f'{v:g}' for v in bbox)} ({bbox_area(bbox):,.0f} sq deg)"


class BudgetTooSmall(ValueError):
    """A requested interval that would spend more than the budget; the message carries the arithmetic."""


def check_requested_interval(interval_s: float, *, bbox, daily_credits: int, budget_fraction: float,
                             max_polls: int | None = None, duration_s: float | None = None) -> None:
    """Refuse polling faster than the budget lasts, unless the run is bounded and fits in the budget."""
    cost = request_cost(bbox)
    budget = daily_credits * budget_fraction
    needed = sustainable_interval_s(cost, budget)
    if interval_s >= needed:
        return
    polls = max_polls
    if duration_s is not None:
        by_time = math.floor(duration_s / interval_s) + 1
        polls = by_time if polls is None else min(polls, by_time)
    if polls is not None and polls * cost <= budget:
        return  # a short run: it cannot exhaust the day, so the requested cadence is harmless
    per_day = DAY_S / interval_s * cost
    raise BudgetTooSmall(
        f"--interval (PRODUCER_INTERVAL) {interval_s:g} s is faster than the OpenSky budget allows: a {describe_request(bbox)} request "
        f"costs {cost} credit{'s' if cost > 1 else ''}, so one every {interval_s:g} s spends "
        f"{per_day:,.0f} credits a day, but the budget is {daily_credits:,} credits/day x {budget_fraction:g} "
        f"= {budget:,.0f}; poll every {math.ceil(needed * 10) / 10:g} s or slower, use a smaller --bbox, or set "
        f"OPENSKY_DAILY_CREDITS if your account has more (active feeders: {FEEDER_DAILY_CREDITS:,})")


@dataclass(frozen=True)
class PollPlan:
    """What the pacer decided after a poll: wait this long, and why (for the progress line)."""
    interval_s: float
    credits_left: int
    runs_out_at: float | None   # epoch s when the usable credits end at this pace (None: they last)
    renews_at: float


class CreditPacer:
    """Spreads the usable credits evenly until they renew; never lets this producer overdraw them.

    ``usable`` is the smaller of this producer's share of the day (``budget_fraction`` x allowance
    minus what it spent since the renewal) and what OpenSky says the account has left (other tools
    may spend too). With N polls' worth usable and T seconds to the renewal (or to the end of a
    bounded run), the next poll comes after T / (N + 1): the last affordable poll lands before the
    renewal, not on it, so almost nothing is left over when the credits renew.
    """

    def __init__(self, *, cost: int, daily_credits: int, budget_fraction: float = 1.0,
                 min_interval_s: float, max_retry_after_s: float, now: float):
        if not 0 < budget_fraction <= 1:
            raise ValueError(f"budget fraction {budget_fraction} must be in (0, 1]")
        self.cost = cost
        self.daily_credits = daily_credits
        self.budget_fraction = budget_fraction
        self.min_interval_s = min_interval_s
        self.max_retry_after_s = max_retry_after_s
        self.renews_at = next_midnight_utc(now)
        self.remaining = float(daily_credits)  # an estimate until the first X-Rate-Limit-Remaining
        self.spent = 0
        self.renewals = 0

    @property
    def budget(self) -> float:
        return self.daily_credits * self.budget_fraction

    def usable(self) -> float:
        return max(min(self.budget - self.spent, self.remaining), 0.0)

    def _roll(self, now: float) -> None:
        while now >= self.renews_at:
            self.renews_at += DAY_S
            self.remaining, self.spent = float(self.daily_credits), 0
            self.renewals += 1

    def charged(self, now: float, remaining: int | None) -> None:
        """A request was answered (and paid for); ``remaining`` is X-Rate-Limit-Remaining when sent."""
        self._roll(now)
        if remaining is not None and remaining > self.remaining:
            # More credits than we thought can only mean OpenSky renewed them earlier than assumed.
            logger.info("OpenSky renewed the credits before %s UTC: %d left now",
                        time.strftime("%H:%M", time.gmtime(self.renews_at)), remaining)
            self.renews_at, self.spent = now + DAY_S, 0
            self.renewals += 1
        self.spent += self.cost
        self.remaining = float(remaining) if remaining is not None else max(self.remaining - self.cost, 0.0)

    def rate_limited(self, now: float, retry_after_s: float) -> float:
        """A 429: the credits are gone until Retry-After. Returns how long to wait (capped)."""
        self.remaining = 0.0
        if retry_after_s > 0:
            self.renews_at = now + retry_after_s  # the server's word on when the credits come back
        wait = min(retry_after_s, self.max_retry_after_s)
        logger.warning("OpenSky rate limit reached; waiting %.0f s (server asked for %.0f s)",
                       wait, retry_after_s, extra={"retry_after_s": retry_after_s})
        return wait

    def plan(self, now: float, *, polls_left: int | None = None, deadline: float | None = None) -> PollPlan:
        """When to poll next. ``polls_left``/``deadline`` bound a run that ends before the renewal."""
        self._roll(now)
        affordable = int(self.usable() // self.cost)
        if affordable == 0:
            # Nothing left to spend: wait for the renewal (the next poll is then the first of a new day).
            return PollPlan(max(self.renews_at - now, self.min_interval_s), int(self.usable()), now, self.renews_at)
        if polls_left is not None and polls_left <= affordable:
            interval = self.min_interval_s  # the run ends long before the credits would
        else:
            end = self.renews_at if deadline is None else min(self.renews_at, deadline)
            interval = max(self.min_interval_s, (end - now) / (affordable + 1))
        runs_out = now + interval * affordable
        return PollPlan(interval, int(self.usable()), runs_out if runs_out < self.renews_at else None, self.renews_at)

    def describe(self, bbox, authenticated: bool, configured_daily: int | None) -> str:
        """The start-up line: how often, and why."""
        kind = ("as configured" if configured_daily is not None
                else "authenticated" if authenticated else "anonymous")
        every = sustainable_interval_s(self.cost, self.budget)
        share = f" x {self.budget_fraction:g} kept for this producer" if self.budget_fraction < 1 else ""
        cadence = max(every, self.min_interval_s)
        why = (f"the budget allows one every {every:,.1f} s, but polling is never faster than "
               f"{self.min_interval_s:g} s" if self.min_interval_s > every else "spread evenly over the day")
        return (f"OpenSky budget: {describe_request(bbox)}, {self.cost} credit{'s' if self.cost > 1 else ''}/request, "
                f"{self.daily_credits:,}/day ({kind}){share} -> one poll every {cadence:,.1f} s ({why}); "
                f"credits assumed to renew at {time.strftime('%H:%M', time.gmtime(self.renews_at))} UTC")
