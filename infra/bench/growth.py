"""Section 5, growth: how the capacity (no sink) changes with partitions x concurrency and with batch size,
and what it costs in resident memory.

* partitions x concurrency 1/2/4: a topic with k partitions, pre-filled with on-ground states, drained by
  a trigger with concurrency k (one batch in flight per partition, as AWS's ESM does);
* batch size 100/1,000/10,000: the capacity section's 6-partition topic, fresh groups (10,000 is the
  capacity run itself);
* peak RSS (VmHWM) of the trigger in each run, and of the producer at each end-to-end load.
Runs that would take long stop after a fixed time; their rate is the committed rate until then.
"""
from __future__ import annotations

from infra.bench.capacity import drain, prefill
from infra.bench.session import Session


def run(session: Session, capacity: dict | None, records_per_topic: int = 150_000,
        partition_counts: tuple[int, ...] = (1, 2, 4), batch_sizes: tuple[int, ...] = (100, 1_000),
        batch_size_for_partitions: int = 1_000, max_seconds: float = 12) -> dict:
    function = capacity["function"] if capacity else session.aws.function(session.name("growth", "function"))[0].function_name
    partitions_rows = []
    for k in partition_counts:
        topic = session.topic(f"growth-p{k}", k)
        session.say(f"growth: {k} partition(s) x concurrency {k}: pre-filling {records_per_topic:,} records")
        prefill(session, topic, records_per_topic, "on-ground")
        row = drain(session, f"growth-p{k}", topic, records_per_topic, function,
                    ("--batch-size", str(batch_size_for_partitions), "--concurrency", str(k)), max_seconds=max_seconds)
        row.update(partitions=k, concurrency=k, batch_size=batch_size_for_partitions)
        partitions_rows.append(row)
        session.say(f"  -> {row['rate'] or 0:,.0f} positions/s, trigger peak RSS {row['trigger_peak_rss_mb']:.0f} MB")

    batch_rows = []
    if capacity:
        cap = capacity["row"]
        for size in batch_sizes:
            session.say(f"growth: batch size {size:,} on the capacity topic ({cap['partitions']} partitions)")
            row = drain(session, f"growth-b{size}", capacity["topic"], cap["records"], function,
                        ("--batch-size", str(size), "--concurrency", str(cap["concurrency"])), max_seconds=max_seconds)
            row.update(partitions=cap["partitions"], concurrency=cap["concurrency"], batch_size=size)
            batch_rows.append(row)
            session.say(f"  -> {row['rate'] or 0:,.0f} positions/s, trigger peak RSS {row['trigger_peak_rss_mb']:.0f} MB")
        batch_rows.append({**cap, "from_capacity_run": True})
    return {"partitions": partitions_rows, "batch_sizes": batch_rows}
