"""Section 2, end to end: producer -> Kafka -> trigger -> function -> SNS -> subscriber at offered loads.

Each load step gets a fresh 6-partition topic and consumer group. The trigger (`python -m trigger`,
default settings unless told otherwise) starts first; once its group has joined, the synthetic
producer (`python -m producer --rate R`) offers R positions/s for a fixed time. When the trigger
has committed every record, the subscriber queue (raw delivery, no filter policy) is drained:
each notification's latency is SQS SentTimestamp (SNS delivery) - kafka_timestamp_ms (the
producer's send time, carried by the function as a message attribute). Messages accumulate during
the run and are drained afterwards, so the subscriber costs the endpoint nothing while it is
measured, exactly as in the sink-ceiling run.

After the listed loads, the offered load keeps rising by half until the pipeline no longer keeps
up (saturation): the delivered rate there is the pipeline's sustained maximum.
"""
from __future__ import annotations

import time

from infra.demo import observe
from infra.bench.aws_side import Subscriber
from infra.bench.kafka_load import GroupProgress
from infra.bench.session import Session, producer_summary, trigger_summary
from trigger.stats import percentile

PARTITIONS = 6
# The trigger's defaults (window 0.5 s, concurrency 6) except BatchSize: at low load the window cuts
# batches anyway (same latency as 100); near saturation 1,000-record batches halve the invocations'
# overhead in the endpoint and nearly double the sustained rate (measured: 1,100 -> 2,180 notifications/s).
TRIGGER_ARGS = ("--batch-size", "1000")
# The producer offers its rate in ticks of this length (R x 0.1 positions each), a steady stream
# rather than one burst a second.
TICK_S = 0.1
WARM_UP_MS = 1000
# A step keeps up when it delivers at least this share of what was offered...
KEEPS_UP_SHARE = 0.9
# ...and its p99 latency stays under this (a growing backlog shows here first).
KEEPS_UP_P99_S = 3.0


def latency_summary(latencies_ms: list[int]) -> dict:
    ordered = sorted(latencies_ms)
    return {q: percentile(ordered, n) for q, n in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


def run_step(session: Session, function: str, subscriber: Subscriber, load: float, seconds: float,
             trigger_args: tuple[str, ...] = (), aircraft: int = 8000, drain_timeout_s: float = 180) -> dict:
    tag = f"e2e-{int(load)}"
    topic = session.topic(tag, PARTITIONS)
    group = session.group(tag)
    progress = GroupProgress(session.kafka, group).start()
    trigger = None
    try:
        trigger = session.joined_trigger(f"{tag}-trigger", topic, group, function, progress, *trigger_args)
        producer = session.producer(f"{tag}-producer", topic, "--rate", f"{load:g}", "--duration", f"{seconds:g}",
                                    "--aircraft", str(aircraft), "--interval", f"{TICK_S:g}")
        meter = session.meter(function, trigger=trigger, producer=producer)
        next_report = time.monotonic() + 5
        while producer.poll() is None:
            time.sleep(0.2)
            if time.monotonic() >= next_report:
                session.say(f"  offering {load:,.0f}/s: {progress.committed:,} records handled so far")
                next_report += 5
        if producer.returncode != 0:
            raise RuntimeError(f"the producer failed ({producer.returncode}):\n{producer.log_tail()}")
        produced = sum(observe.end_offsets(session.kafka, topic).values())  # the run's topics start at 0
        produce_end = time.monotonic()
        deadline = produce_end + drain_timeout_s
        while progress.committed < produced:
            if trigger.poll() is not None:
                raise RuntimeError(f"the trigger exited early:\n{trigger.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the trigger handled {progress.committed} of {produced} records "
                                   f"in {drain_timeout_s:.0f}s after the producer stopped")
            time.sleep(0.2)
            if time.monotonic() >= next_report:
                session.say(f"  backlog after the producer stopped: {produced - progress.committed:,} records")
                next_report += 5
        backlog_s = time.monotonic() - produce_end
        cpu = meter.stop()
        trigger.stop()
    finally:
        progress.stop()
        if trigger is not None and trigger.returncode is None:
            trigger.stop()

    deliveries = session.aws.drain(subscriber.queue_url, progress=session.say)
    stamped = [d for d in deliveries if d.kafka_ms is not None]
    # The producer's rate mode sends a whole second's worth of positions in its first tick (its
    # cumulative target runs one second ahead), a start-up burst rather than the steady load being
    # measured: records produced in the step's first second are left out of the percentiles, and
    # "max" is over every notification.
    steady_from = min((d.kafka_ms for d in stamped), default=0) + WARM_UP_MS
    latencies = [d.sent_ms - d.kafka_ms for d in stamped if d.kafka_ms >= steady_from]
    lat = latency_summary(latencies) if latencies else {}
    if stamped:
        lat["max"] = max(d.sent_ms - d.kafka_ms for d in stamped)
    in_air = len(deliveries) / produced if produced else 0.0
    # Handled records over time, from the committed offsets (10%..90% of the step's records): the
    # offered rate while the pipeline keeps up, its own maximum once a backlog builds.
    rate = progress.steady_rate(produced)
    t0, t1 = progress.time_reaching(produced * 0.1), progress.time_reaching(produced * 0.9)
    steady = meter.window(t0, t1) if t0 is not None and t1 is not None else None
    row = {
        "offered": load, "seconds": round(seconds, 2), "produced": produced,
        "producer": producer_summary(producer), "producer_peak_rss_mb": round(producer.peak_rss_mb, 1),
        "notifications": len(deliveries), "in_air_share": round(in_air, 3),
        "positions_per_s": round(rate, 1) if rate else None,
        "notifications_per_s": round(rate * in_air, 1) if rate else None,
        "latency_ms": lat, "backlog_drain_s": round(backlog_s, 1),
        "trigger": trigger_summary(trigger), "trigger_peak_rss_mb": round(trigger.peak_rss_mb, 1),
        "cpu": cpu.as_dict(),
        # Over the steady part only (10%..90% of the step's records handled): the per-notification figures.
        "cpu_steady": steady.as_dict() if steady else None,
        "steady_notifications": round(rate * in_air * steady.wall_s) if rate and steady else None,
    }
    row["keeps_up"] = bool(rate and lat and rate >= KEEPS_UP_SHARE * load and lat["p99"] / 1000 <= KEEPS_UP_P99_S)
    return row


def run(session: Session, loads: tuple[float, ...] = (250, 500, 1000, 2000), seconds: float = 10,
        extra_steps: int = 3, trigger_args: tuple[str, ...] = TRIGGER_ARGS, max_positions: int = 10_000) -> dict:
    """`seconds` per load, but at most `max_positions` records per step: the subscriber queue is drained
    afterwards, and MiniStack's ReceiveMessage/DeleteMessageBatch scan the whole queue on every call
    (draining N messages costs O(N^2)), so a step is kept to about 8,000 notifications."""
    settings, topic_arn = session.aws.function(session.name("e2e", "function"))
    subscriber = session.aws.subscriber(topic_arn, session.name("e2e", "queue"))
    session.aws.warm_up(settings.function_name, PARTITIONS)
    rows = []
    plan = list(loads)
    while plan:
        load = plan.pop(0)
        step_s = min(seconds, max_positions / load)
        session.say(f"end to end: offering {load:,.0f} positions/s for {step_s:.1f}s")
        row = run_step(session, settings.function_name, subscriber, load, step_s, trigger_args)
        rows.append(row)
        lat = row["latency_ms"]
        session.say(f"  -> {row['notifications_per_s'] or 0:,.0f} notifications/s delivered "
                    f"({row['positions_per_s'] or 0:,.0f} positions/s), latency p50 {lat.get('p50', 0):,} ms "
                    f"p99 {lat.get('p99', 0):,} ms, {'keeps up' if row['keeps_up'] else 'SATURATED'}")
        if not plan and row["keeps_up"] and extra_steps > 0:
            extra_steps -= 1
            plan.append(round(load * 1.5, -2))
    delivered = [r["notifications_per_s"] for r in rows if r["notifications_per_s"]]
    return {"rows": rows, "function": settings.function_name, "trigger_args": list(trigger_args),
            "max_notifications_per_s": max(delivered, default=0),
            "max_positions_per_s": max((r["positions_per_s"] or 0 for r in rows), default=0)}
