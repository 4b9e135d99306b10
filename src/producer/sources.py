"""Where states come from: OpenSky (with its change filter and credit pacing), the synthetic fleet, a CSV replay.

Each source's ``poll(now)`` returns one ``Batch``; the loop in ``runner.py`` only schedules polls
and hands the messages to a sink.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .credit_pacing import CreditPacer, PollPlan, default_daily_credits, request_cost
from .opensky import OpenSkyBadResponse, OpenSkyClient, StatesSnapshot
from .replay import read_batches
from .settings import ProducerConfig
from .state_vector import to_message

logger = logging.getLogger(__name__)


class ProducerError(RuntimeError):
    """A failure the producer cannot recover from by waiting (bad credentials, a refused request)."""


@dataclass
class Batch:
    """What one poll produced: messages to publish plus the bookkeeping for the progress line."""
    messages: list[dict]
    fetched: int
    skipped: int = 0
    rejected: int = 0
    info: dict = field(default_factory=dict)


class EndOfSource(Exception):
    """A finite source (CSV replay) has nothing more to give."""


# ---------------------------------------------------------------- de-duplication
class ChangeFilter:
    """Publishes an aircraft only when its last_contact moved, and each snapshot time once.

    OpenSky answers with the same snapshot until its resolution (5/10 s) has passed; aircraft out
    of coverage keep their old last_contact for up to 300 s. Neither is news for a consumer.
    """

    def __init__(self, forget_after_s: float = 3600.0):
        self.last_snapshot_time: int | None = None
        self._last_contact: dict[str, int] = {}
        self._forget_after_s = forget_after_s

    def __len__(self) -> int:
        return len(self._last_contact)

    def is_duplicate(self, snapshot_time: int) -> bool:
        return self.last_snapshot_time is not None and snapshot_time <= self.last_snapshot_time

    def fresh(self, snapshot: StatesSnapshot) -> tuple[list[dict], int]:
        """States worth publishing and how many were skipped as unchanged."""
        self.last_snapshot_time = snapshot.time
        seen = self._last_contact
        out, unchanged = [], 0
        for state in snapshot.states:
            if seen.get(state["icao24"]) == state["last_contact"]:
                unchanged += 1
                continue
            seen[state["icao24"]] = state["last_contact"]
            out.append(state)
        if len(seen) > 50_000:  # bounded memory on a long run: forget aircraft long out of coverage
            horizon = snapshot.time - self._forget_after_s
            self._last_contact = {k: v for k, v in seen.items() if v >= horizon}
        return out, unchanged


# ---------------------------------------------------------------- sources
class OpenSkySource:
    def __init__(self, config: ProducerConfig, now: float, client: OpenSkyClient | None = None, sleep=None):
        self._config = config
        self.client = client or OpenSkyClient(config.opensky, **({"sleep": sleep} if sleep else {}))
        self.changes = ChangeFilter()
        settings = config.opensky
        self.pacer = CreditPacer(
            cost=request_cost(config.bbox),
            daily_credits=settings.daily_credits or default_daily_credits(settings.authenticated),
            budget_fraction=settings.budget_fraction, min_interval_s=config.effective_interval_s,
            max_retry_after_s=settings.max_retry_after_s, now=now)
        logger.info("%s", self.pacer.describe(config.bbox, settings.authenticated, settings.daily_credits),
                    extra={"credits_per_request": self.pacer.cost, "daily_credits": self.pacer.daily_credits,
                           "budget_fraction": self.pacer.budget_fraction})

    def poll(self, now: float) -> Batch:
        try:
            snapshot = self.client.fetch_states(self._config.bbox, self._config.icao24)
        except OpenSkyBadResponse:
            self.pacer.charged(now, None)  # a 200 with a broken body was still paid for
            raise
        self.pacer.charged(now, snapshot.credits_remaining)
        fetched_at = time.time()
        for index, reason in snapshot.rejected:
            logger.warning("rejected state vector #%d of snapshot %d: %s", index, snapshot.time, reason)
        info = {"snapshot_time": snapshot.time, "credits_remaining": snapshot.credits_remaining}
        if self.changes.is_duplicate(snapshot.time):
            info["duplicate_snapshot"] = True
            return Batch([], len(snapshot.states), skipped=len(snapshot.states),
                         rejected=len(snapshot.rejected), info=info)
        states, unchanged = self.changes.fresh(snapshot)
        return Batch([to_message(s, "opensky", fetched_at) for s in states], len(snapshot.states),
                     skipped=unchanged, rejected=len(snapshot.rejected), info=info)

    def rate_limited(self, now: float, retry_after_s: float) -> float:
        return self.pacer.rate_limited(now, retry_after_s)

    def plan(self, now: float, polls_left: int | None, deadline: float | None) -> PollPlan:
        return self.pacer.plan(now, polls_left=polls_left, deadline=deadline)

    def close(self) -> None:
        self.client.close()


class SyntheticSource:
    def __init__(self, config: ProducerConfig, start_time: float):
        from .synthetic import SyntheticFleet  # airports load only when this source is used

        started = time.perf_counter()
        self.fleet = SyntheticFleet(config.aircraft, config.seed, start_time)
        logger.info("synthetic fleet of %d aircraft ready in %.1f s (seed %d)", len(self.fleet),
                    time.perf_counter() - started, config.seed)
        self._rate = config.rate
        self._rate_start: float | None = None
        self._emitted = 0
        self._warned_at = float("-inf")

    def interval(self, requested: float) -> float:
        # In rate mode a tick never covers more than the whole fleet once.
        if self._rate:
            return max(0.05, min(requested, len(self.fleet) / self._rate))
        return requested

    def poll(self, now: float) -> Batch:
        if not self._rate:
            states = self.fleet.tick(now)
            return Batch(states, len(states))
        if self._rate_start is None:
            self._rate_start = now
        # Cumulative target: a short stall is caught up on the next ticks, so the long-run rate is
        # exact; a tick never exceeds the fleet, so a sink slower than the rate cannot snowball.
        target = int(self._rate * (now - self._rate_start + self.interval(1.0)))
        backlog = target - self._emitted
        if backlog > len(self.fleet) and now - self._warned_at >= 10.0:
            self._warned_at = now
            logger.warning("falling behind the requested rate of %.0f positions/s by %d positions; "
                           "the sink is the bottleneck", self._rate, backlog - len(self.fleet))
        states = self.fleet.advance(now, min(max(backlog, 0), len(self.fleet)))
        self._emitted += len(states)
        return Batch(states, len(states), info={"backlog": max(backlog - len(states), 0)})

    def close(self) -> None:
        pass


class ReplaySource:
    def __init__(self, config: ProducerConfig):
        if not Path(config.replay).is_file():
            raise ProducerError(f"replay file {config.replay} does not exist (create one with --export-csv)")
        self._path = config.replay
        self._batches = read_batches(config.replay, config.batch_rows)

    def poll(self, now: float) -> Batch:
        try:
            states, rejected = next(self._batches)
        except StopIteration:
            raise EndOfSource(f"replay of {self._path} finished") from None
        for line, reason in rejected:
            logger.warning("rejected row at line %d of %s: %s", line, self._path, reason)
        return Batch([to_message(s, "replay", now) for s in states], len(states), rejected=len(rejected))

    def close(self) -> None:
        self._batches.close()


def build_source(config: ProducerConfig, now: float, sleep):
    """The configured source; ``sleep`` is how OpenSky's retry backoff waits (it ends early on stop)."""
    if config.source == "opensky":
        return OpenSkySource(config, now, sleep=sleep)
    if config.source == "synthetic":
        return SyntheticSource(config, config.start_time if config.start_time is not None else now)
    return ReplaySource(config)
