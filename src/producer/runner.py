"""The producer loop: poll a source every interval, drop what did not change, hand states to a sink.

``run_producer(config, stop_event)`` is the programmatic entry point used by the CLI, the demo
and the benchmarks; it returns ``ProducerStats`` once duration/max_ticks is reached or the
stop event is set, after flushing everything it handed to the sink.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from .kafka_sink import KafkaSink, Sink
from .opensky import OpenSkyClient, OpenSkyError, OpenSkyRateLimited, StatesSnapshot
from .replay import CsvSink, read_batches
from .settings import ProducerConfig
from .state_vector import to_message

logger = logging.getLogger(__name__)


class ProducerError(RuntimeError):
    """A failure the producer cannot recover from by waiting (bad credentials, a refused request)."""


# ---------------------------------------------------------------- results
@dataclass
class ProducerStats:
    fetched: int = 0      # states received from the source (valid ones)
    published: int = 0    # acknowledged by the sink (broker acks for Kafka)
    skipped: int = 0      # unchanged aircraft and states of duplicate snapshots
    rejected: int = 0     # rows that failed validation and were never published
    failed: int = 0       # delivery failures reported by the sink
    errors: int = 0       # polls that failed (rate limited, unavailable, malformed response)
    ticks: int = 0        # polls/ticks attempted
    elapsed_s: float = 0.0
    sent: int = 0         # handed to the sink (published + failed + still in flight)

    @property
    def rate(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rate": round(self.rate, 1)}


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


# ---------------------------------------------------------------- clocks
class Clock(Protocol):
    def now(self) -> float: ...
    def wait(self, seconds: float, stop: threading.Event) -> bool: ...  # True when stopped


class RealClock:
    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds) if seconds > 0 else stop.is_set()


class SimulatedClock:
    """Time that jumps instead of sleeping: exports and tests run as fast as the CPU allows."""

    def __init__(self, start: float):
        self._now = start

    def now(self) -> float:
        return self._now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self._now += max(seconds, 0.0)
        return stop.is_set()


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
    def __init__(self, config: ProducerConfig, client: OpenSkyClient | None = None, sleep=None):
        self._config = config
        self.client = client or OpenSkyClient(config.opensky, **({"sleep": sleep} if sleep else {}))
        self.changes = ChangeFilter()

    def poll(self, now: float) -> Batch:
        snapshot = self.client.fetch_states(self._config.bbox, self._config.icao24)
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


# ---------------------------------------------------------------- the loop
def build_sink(config: ProducerConfig, stop_event: threading.Event) -> Sink:
    if config.export_csv:
        return CsvSink(config.export_csv)
    return KafkaSink(config.topic, config.kafka, connect_timeout_s=config.connect_timeout_s, stop_event=stop_event)


def run_producer(config: ProducerConfig, stop_event: threading.Event | None = None, *,
                 sink: Sink | None = None, clock: Clock | None = None, source=None) -> ProducerStats:
    """Run until duration/max_ticks or ``stop_event``; always flushes and closes what it opened."""
    stop = stop_event or threading.Event()
    if clock is None:
        # Writing a file needs no pacing: synthetic/replay exports run on simulated time.
        fast = config.export_csv and config.source in ("synthetic", "replay")
        clock = SimulatedClock(config.start_time or time.time()) if fast else RealClock()
    stats = ProducerStats()
    if source is None:
        source = _build_source(config, clock, stop)  # first: a missing replay file fails before connecting
    try:
        own_sink = sink is None
        if own_sink:
            sink = build_sink(config, stop)
        try:
            _loop(config, source, sink, clock, stop, stats)
        finally:
            if own_sink:
                sink.close()
            else:
                sink.flush(30.0)
            stats.published, stats.failed = sink.delivered, sink.failed
    finally:
        source.close()
    logger.info("producer finished: %d ticks, fetched %d, published %d, skipped %d, rejected %d, "
                "failed %d, poll errors %d, %.0f msg/s", stats.ticks, stats.fetched, stats.published,
                stats.skipped, stats.rejected, stats.failed, stats.errors, stats.rate,
                extra={"topic": config.topic, "stats": stats.as_dict()})
    return stats


def _build_source(config: ProducerConfig, clock: Clock, stop: threading.Event):
    if config.source == "opensky":
        # Backoff sleeps inside the client end early when the producer is asked to stop.
        return OpenSkySource(config, sleep=lambda s: clock.wait(s, stop))
    if config.source == "synthetic":
        return SyntheticSource(config, config.start_time or clock.now())
    return ReplaySource(config)


def _loop(config: ProducerConfig, source, sink: Sink, clock: Clock, stop: threading.Event,
          stats: ProducerStats) -> None:
    interval = config.effective_interval_s
    if hasattr(source, "interval"):
        interval = source.interval(interval)
    if config.source == "opensky" and config.interval_s and config.interval_s < interval:
        logger.warning("interval %.1f s is shorter than OpenSky's data resolution; polling every %.0f s",
                       config.interval_s, interval)
    start = clock.now()
    deadline = start + config.duration_s if config.duration_s else None
    next_at = start
    window = {"ticks": 0, "fetched": 0, "sent": 0, "skipped": 0, "rejected": 0, "since": start}

    while not stop.is_set():
        now = clock.now()
        if (deadline is not None and now >= deadline) or (config.max_ticks and stats.ticks >= config.max_ticks):
            break
        batch, resume_at = None, None
        try:
            batch = source.poll(now)
        except EndOfSource as exc:
            logger.info("%s", exc)
            break
        except OpenSkyRateLimited as exc:
            stats.errors += 1
            wait = min(exc.retry_after, config.opensky.max_retry_after_s)
            logger.warning("OpenSky rate limit reached; waiting %.0f s (server asked for %.0f s)",
                           wait, exc.retry_after, extra={"retry_after_s": exc.retry_after})
            resume_at = clock.now() + wait  # counted from the answer, as the server means it
        except OpenSkyError as exc:
            if not exc.retriable:
                raise ProducerError(f"OpenSky: {exc}") from None
            stats.errors += 1
            logger.error("OpenSky poll failed, nothing published for this tick: %s", exc,
                         extra={"error_type": type(exc).__name__})

        stats.ticks += 1  # failed polls count too: --max-ticks bounds the requests made
        if batch is not None:
            for message in batch.messages:
                sink.send(message["icao24"], message)
            stats.fetched += batch.fetched
            stats.sent += len(batch.messages)
            stats.skipped += batch.skipped
            stats.rejected += batch.rejected
            for key, value in (("fetched", batch.fetched), ("sent", len(batch.messages)),
                               ("skipped", batch.skipped), ("rejected", batch.rejected)):
                window[key] += value
            window["ticks"] += 1
            window.update(batch.info)

        after = clock.now()
        # One progress line per tick, at most one a second when ticks are faster (rate mode).
        if window["ticks"] and (interval >= 1.0 or after - window["since"] >= 1.0):
            _progress(config, stats, window, sink, _covered(after - start, stats.ticks, interval))
            window.update(ticks=0, fetched=0, sent=0, skipped=0, rejected=0, since=after)
            window.pop("duplicate_snapshot", None)

        if config.max_ticks and stats.ticks >= config.max_ticks:
            break
        # Never burst to catch up missed ticks (rate mode catches up by count instead).
        next_at = resume_at if resume_at is not None else max(next_at + interval, after)
        if deadline is not None:
            next_at = min(next_at, deadline)
        if clock.wait(next_at - after, stop):
            break
    stats.elapsed_s = _covered(clock.now() - start, stats.ticks, interval)


def _covered(elapsed: float, ticks: int, interval: float) -> float:
    """Time the ticks so far represent: each tick stands for one interval, unless running behind."""
    return max(elapsed, ticks * interval, 1e-9)


def _progress(config: ProducerConfig, stats: ProducerStats, window: dict, sink: Sink, elapsed: float) -> None:
    extra = {"source": config.source, "tick": stats.ticks, "fetched": window["fetched"],
             "published": window["sent"], "skipped": window["skipped"], "rejected": window["rejected"],
             "failed": sink.failed, "rate_per_s": round(stats.sent / elapsed, 1)}
    detail = ""
    if config.source == "opensky":
        credits = window.get("credits_remaining")
        extra["credits_remaining"] = credits
        detail = f", credits remaining {credits if credits is not None else 'n/a'}"
        if window.get("duplicate_snapshot"):
            detail += ", duplicate snapshot"
    elif config.rate:
        extra["rate_requested"] = config.rate
        extra["backlog"] = window.get("backlog", 0)
        detail = f", requested {config.rate:.0f}/s, backlog {extra['backlog']}"
    logger.info("tick %d: fetched %d, published %d, skipped %d, rejected %d, failed %d%s, rate %.0f/s",
                stats.ticks, window["fetched"], window["sent"], window["skipped"], window["rejected"],
                sink.failed, detail, extra["rate_per_s"], extra={**extra, "topic": config.topic})
