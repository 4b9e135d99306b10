"""Section 3, capacity without the sink: Kafka -> trigger -> function with every record filtered out.

A topic is pre-filled with N on-ground states (loader subprocesses, the producer's own Kafka
settings and JSON), then a fresh trigger group drains it with large batches and `--until-idle-s`.
The function parses and checks every record and publishes nothing, so the rate is what Kafka, the
trigger, the Lambda endpoint and the function can move when SNS is not the limit. The rate is
read from the group's committed offsets (the trigger commits only handled records), between 10%
and 90% of the topic, so start-up and the tail do not count.

`drain` is shared with the seed-design and growth sections: one fresh group over a pre-filled topic.
"""
from __future__ import annotations

import sys
import time

from infra.bench.kafka_load import GroupProgress
from infra.bench.session import Session, trigger_summary


def prefill(session: Session, topic: str, count: int, kind: str, loaders: int = 2, value_format: str = "json") -> dict:
    """Fill `topic` with `count` records from `loaders` parallel loader processes."""
    started = time.monotonic()
    share = -(-count // loaders)
    children = []
    for i in range(loaders):
        n = min(share, count - i * share)
        if n <= 0:
            break
        children.append(session.spawn(f"loader-{topic.rsplit('-', 1)[-1]}-{i}", [
            sys.executable, "-m", "infra.bench.kafka_load", "prefill", "--topic", topic, "--count", str(n),
            "--kind", kind, "--seed", str(41 + i), "--format", value_format], LOG_LEVEL="WARNING"))
    for child in children:
        if child.wait(600) != 0:
            raise RuntimeError(f"pre-filling {topic} failed:\n{child.log_tail()}")
    seconds = time.monotonic() - started
    return {"records": count, "seconds": round(seconds, 1), "rate": round(count / seconds, 1)}


def drain(session: Session, tag: str, topic: str, total: int, function: str, trigger_args: tuple[str, ...],
          max_seconds: float | None = None, idle_s: float = 3.0) -> dict:
    """Run a fresh trigger group over a pre-filled topic until it is drained (or `max_seconds` pass).

    Returns the steady rate (10%..90% of the records when drained, else the committed rate after
    the first commit), the trigger's CPU, peak RSS and counters, and the CPU split.
    """
    group = session.group(tag)
    progress = GroupProgress(session.kafka, group).start()
    args = [*trigger_args, "--until-idle-s", f"{idle_s:g}"]
    if max_seconds:
        args += ["--duration", f"{max_seconds:g}"]
    try:
        trigger = session.joined_trigger(f"{tag}-trigger", topic, group, function, progress, *args)
    except BaseException:
        progress.stop()
        raise
    meter = session.meter(function, trigger=trigger)
    next_report = time.monotonic() + 5
    try:
        while trigger.poll() is None and progress.committed < total:
            time.sleep(0.2)
            if time.monotonic() >= next_report:
                session.say(f"  {tag}: {progress.committed:,} of {total:,} records handled")
                next_report += 5
        ended = time.monotonic()
        cpu = meter.stop()
        if trigger.wait(idle_s + 30) is None:
            trigger.stop()
    finally:
        progress.stop()
    handled = progress.committed
    drained = handled >= total
    if drained:
        rate = progress.steady_rate(total)
        t0, t1 = progress.time_reaching(total * 0.1), progress.time_reaching(total * 0.9)
    else:
        t0, t1 = (progress.time_reaching(1) or ended) + 1.0, ended  # skip the first, cold invocations
        rate = progress.rate_between(t0, t1)
    steady = meter.window(t0, t1) if t0 is not None and t1 is not None else None
    steady_records = round(rate * steady.wall_s) if rate and steady else None
    if trigger.returncode not in (0, None):
        raise RuntimeError(f"the trigger failed ({trigger.returncode}):\n{trigger.log_tail()}")
    return {"records": total, "handled": handled, "drained": drained,
            "rate": round(rate, 1) if rate else None,
            "trigger": trigger_summary(trigger), "trigger_peak_rss_mb": round(trigger.peak_rss_mb, 1),
            "trigger_cpu_us_per_record": round(cpu.seconds.get("trigger", 0) / handled * 1e6, 1) if handled else None,
            "cpu": cpu.as_dict(),
            # The same split over the steady part only (what the per-record figures use).
            "cpu_steady": steady.as_dict() if steady else None, "steady_records": steady_records}


def run(session: Session, records: int = 500_000, batch_size: int = 10_000, partitions: int = 6) -> dict:
    settings, _topic_arn = session.aws.function(session.name("cap", "function"))
    session.aws.warm_up(settings.function_name, partitions)
    topic = session.topic("capacity", partitions)
    session.say(f"capacity: pre-filling {topic} with {records:,} on-ground states")
    filled = prefill(session, topic, records, "on-ground")
    session.say(f"  pre-filled at {filled['rate']:,.0f} records/s")
    session.say(f"capacity: draining it with a fresh group, batch size {batch_size:,}, concurrency {partitions}")
    row = drain(session, "capacity", topic, records, settings.function_name,
                ("--batch-size", str(batch_size), "--concurrency", str(partitions)))
    row.update(batch_size=batch_size, partitions=partitions, concurrency=partitions, prefill=filled)
    cpu = row["cpu_steady"] or row["cpu"]
    shares = {k: round(v / cpu["wall_s"], 2) for k, v in cpu["cpu_s"].items()}
    session.say(f"  -> {row['rate'] or 0:,.0f} positions/s; trigger peak RSS {row['trigger_peak_rss_mb']:.0f} MB; "
                f"cores used: " + ", ".join(f"{k} {v}" for k, v in shares.items()))
    return {"row": row, "topic": topic, "function": settings.function_name}
