"""The producer loop: poll a source when it is due, hand what it produced to a sink, report progress.

``run_producer(config, stop_event)`` is the programmatic entry point used by the CLI, the demo
and the benchmarks; it returns ``ProducerStats`` once duration/max_ticks is reached or the
stop event is set, after flushing everything it handed to the sink.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from .kafka_sink import KafkaSink, Sink
from .opensky import OpenSkyError, OpenSkyRateLimited
from .replay import CsvSink
from .settings import ProducerConfig
from .sources import EndOfSource, ProducerError, build_source

logger = logging.getLogger(__name__)


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


class PacedClock:
    """Simulated time paced by the wall clock: a live run of a past (or future) day.

    ``now()`` starts at ``start`` and moves only by the waits asked for, so tick n is stamped exactly
    start + n x interval (the same states as an --export-csv of the same flags); each wait also lasts
    that long on the wall clock, minus the time the tick itself took. A run that falls behind goes on
    at once and does not burst to catch up, as the real-time loop does.
    """

    def __init__(self, start: float, wall=time.monotonic):
        self._now = start
        self._wall = wall
        self._due = wall()

    def now(self) -> float:
        return self._now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        seconds = max(seconds, 0.0)
        self._now += seconds
        wall_now = self._wall()
        self._due = max(self._due + seconds, wall_now)
        delay = self._due - wall_now
        return stop.wait(delay) if delay > 0 else stop.is_set()


def default_clock(config: ProducerConfig) -> Clock:
    """The producer's clock for this configuration (a test may pass its own to run_producer).

    Writing a file needs no pacing: synthetic/replay exports run on simulated time. A start time with
    Kafka output runs on paced simulated time: planning a fleet from a past day up to the real now
    took 181 s for 1,000 aircraft from 2021-10-07, and its ticks would have been stamped today.
    """
    if config.source in ("synthetic", "replay"):
        if config.export_csv:
            return SimulatedClock(config.start_time if config.start_time is not None else time.time())
        if config.start_time is not None:
            return PacedClock(config.start_time)
    return RealClock()


# ---------------------------------------------------------------- the loop
def build_sink(config: ProducerConfig, stop_event: threading.Event) -> Sink:
    if config.export_csv:
        return CsvSink(config.export_csv)
    return KafkaSink(config.topic, config.kafka, value_format=config.value_format,
                     connect_timeout_s=config.connect_timeout_s, stop_event=stop_event)


def run_producer(config: ProducerConfig, stop_event: threading.Event | None = None, *,
                 sink: Sink | None = None, clock: Clock | None = None, source=None) -> ProducerStats:
    """Run until duration/max_ticks or ``stop_event``; always flushes and closes what it opened."""
    stop = stop_event or threading.Event()
    if clock is None:
        clock = default_clock(config)
    stats = ProducerStats()
    if source is None:
        # First: a missing replay file fails before connecting. OpenSky's retry backoff waits on the
        # producer's clock, so it ends early when the producer is asked to stop.
        source = build_source(config, clock.now(), lambda s: clock.wait(s, stop))
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


def _loop(config: ProducerConfig, source, sink: Sink, clock: Clock, stop: threading.Event,
          stats: ProducerStats) -> None:
    interval = config.effective_interval_s
    if hasattr(source, "interval"):
        interval = source.interval(interval)
    if config.source == "opensky" and config.interval_s and config.interval_s < interval:
        logger.warning("interval %.1f s is shorter than OpenSky's data resolution; polling every %.0f s",
                       config.interval_s, interval)
    paced = hasattr(source, "plan")  # OpenSky: the credit budget decides each wait
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
            answered = clock.now()  # the wait counts from the answer, as the server means it
            resume_at = answered + source.rate_limited(answered, exc.retry_after)
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
        wait = interval
        if paced and resume_at is None:
            plan = source.plan(after, config.max_ticks - stats.ticks if config.max_ticks else None, deadline)
            wait = plan.interval_s
            window["plan"] = plan
        # One progress line per tick, at most one a second when ticks are faster (rate mode).
        if window["ticks"] and (interval >= 1.0 or after - window["since"] >= 1.0):
            _progress(config, stats, window, sink, _covered(after - start, stats.ticks, interval))
            window.update(ticks=0, fetched=0, sent=0, skipped=0, rejected=0, since=after)
            window.pop("duplicate_snapshot", None)

        if config.max_ticks and stats.ticks >= config.max_ticks:
            break
        # Never burst to catch up missed ticks (rate mode catches up by count instead).
        next_at = resume_at if resume_at is not None else max(next_at + wait, after)
        if deadline is not None:
            next_at = min(next_at, deadline)
        if clock.wait(next_at - after, stop):
            break
    stats.elapsed_s = _covered(clock.now() - start, stats.ticks, interval)


def _covered(elapsed: float, ticks: int, interval: float) -> float:
    """Time the ticks so far represent: each tick stands for one interval, unless running behind."""
    return max(elapsed, ticks * interval, 1e-9)


def _utc(epoch: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch))


def _progress(config: ProducerConfig, stats: ProducerStats, window: dict, sink: Sink, elapsed: float) -> None:
    extra = {"source": config.source, "tick": stats.ticks, "fetched": window["fetched"],
             "published": window["sent"], "skipped": window["skipped"], "rejected": window["rejected"],
             "failed": sink.failed, "rate_per_s": round(stats.sent / elapsed, 1)}
    detail = ""
    if config.source == "opensky":
        credits = window.get("credits_remaining")
        extra["credits_remaining"] = credits
        detail = f", credits remaining {credits if credits is not None else 'n/a'}"
        plan = window.get("plan")
        if plan is not None:
            extra.update(next_poll_s=round(plan.interval_s, 1), credits_usable=plan.credits_left,
                         credits_run_out_at=plan.runs_out_at, credits_renew_at=plan.renews_at)
            detail += (f" ({plan.credits_left:,} usable, last until "
                       f"{_utc(plan.runs_out_at) if plan.runs_out_at is not None else 'the renewal'} at this pace, "
                       f"renew {_utc(plan.renews_at)}; next poll in {plan.interval_s:,.0f} s)")
        if window.get("duplicate_snapshot"):
            detail += ", duplicate snapshot"
    elif config.rate:
        extra["rate_requested"] = config.rate
        extra["backlog"] = window.get("backlog", 0)
        detail = f", requested {config.rate:.0f}/s, backlog {extra['backlog']}"
    logger.info("tick %d: fetched %d, published %d, skipped %d, rejected %d, failed %d%s, rate %.0f/s",
                stats.ticks, window["fetched"], window["sent"], window["skipped"], window["rejected"],
                sink.failed, detail, extra["rate_per_s"], extra={**extra, "topic": config.topic})
