"""Section 4, the seed's design on the same stack: one invoke per message, one publish per record.

The seed's trigger is a plain loop: poll a message, invoke the function with it (RequestResponse),
next message. `python -m trigger --mode per-message --concurrency 1` is exactly that (the raw JSON
message is the event, one at a time), and the function publishes the one notification it yields.
A topic pre-filled with synthetic fleet states (about 80% in the air, like the end-to-end runs)
is consumed for a fixed time; the rate is read from the group's committed offsets, and the
subscriber queue confirms the notifications arrived.
"""
from __future__ import annotations

from infra.bench.capacity import drain, prefill
from infra.bench.session import Session


def run(session: Session, records: int = 3_000, seconds: float = 15, concurrency: tuple[int, ...] = (1,)) -> dict:
    settings, topic_arn = session.aws.function(session.name("seed", "function"))
    subscriber = session.aws.subscriber(topic_arn, session.name("seed", "queue"))
    session.aws.warm_up(settings.function_name, max(concurrency))
    topic = session.topic("seed", 6)
    prefill(session, topic, records, "fleet", loaders=1)
    rows = []
    for n in concurrency:
        session.say(f"seed design: one invoke per message, {n} at a time, for up to {seconds:g}s")
        row = drain(session, f"seed-c{n}", topic, records, settings.function_name,
                    ("--mode", "per-message", "--concurrency", str(n)), max_seconds=seconds, idle_s=2)
        delivered = len(session.aws.drain(subscriber.queue_url))
        row.update(concurrency=n, notifications=delivered,
                   in_air_share=round(delivered / row["handled"], 3) if row["handled"] else None)
        rows.append(row)
        session.say(f"  -> {row['rate'] or 0:,.1f} positions/s ({delivered:,} notifications for "
                    f"{row['handled']:,} records)")
    return {"rows": rows, "rate": rows[0]["rate"], "function": settings.function_name}
