#!/usr/bin/env python3
"""The whole pipeline for about a minute, then a summary whose numbers must reconcile.

    python -m infra.demo.run [--seconds 60] [--aircraft 1500] [--interval 5] [--keep-stack]

Starts the native stack if it is not running, deploys the resources, runs the synthetic producer,
the trigger, the tracker and the archiver, drains the pipeline, then checks every count against an
independent recount (infra/demo/observe.py): the run's records are read back from Kafka and put through
the function's own filter, so "in the air" and "expected at the subscriber" are known without trusting
the pipeline's counters; the tracker's rows in PostgreSQL and the archiver's in the Iceberg table are
checked against the run's distinct positions (infra/demo/tracker_recount.py, lake_recount.py), and the
gold job's totals against the positions_clean rules recounted over the lake.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from infra import progress



from infra.demo import observe
from infra.deploy import aws_resources
from infra.stack import servers as stack
from infra.demo.alerts_recount import DemoAlerts
from infra.demo.lake_recount import DemoLake
from infra.demo.tracker_recount import DemoTracker
from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.logs import configure_logging
from producer.runner import run_producer
from producer.settings import ProducerConfig
from trigger.mapping import TriggerConfig
from trigger.runner import Trigger

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUMMARY = ROOT / ".state" / "demo-summary.json"


say = progress.printer("[demo]")


def drain_queue(clients: aws_resources.AwsClients, queue_url: str, quiet_s: float = 4.0) -> int:
    """Receive and delete until the queue has been empty for `quiet_s`; returns how many arrived."""
    received, last_seen = 0, time.monotonic()
    while time.monotonic() - last_seen < quiet_s:
        messages = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", [])
        if messages:
            received += len(messages)
            last_seen = time.monotonic()
            clients.sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return received


def run_demo(seconds: float = 60, aircraft: int = 1500, interval: float = 5.0, seed: int = 42,
             keep_stack: bool = False, summary_path: Path = DEFAULT_SUMMARY, drain_timeout_s: float = 180,
             settings: aws_resources.AwsResourceSettings | None = None) -> dict:
    """Run the pipeline once and return the reconciled summary (also written to `summary_path`)."""
    begun = time.monotonic()
    cfg = stack.StackConfig.from_env()
    # The demo runs on the local stack: the same defaults the Makefile exports, when run directly.
    for key, value in {"AWS_ENDPOINT_URL": cfg.endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        os.environ.setdefault(key, value)
    started_stack = False
    closers: list = []
    if not (stack.kafka_ready(cfg.bootstrap) and stack.endpoint_ready(cfg.endpoint)):
        say("starting the native stack (Kafka + MiniStack)")
        stack.up(cfg)
        started_stack = True
    else:
        stack.ensure_topics(cfg)
        say("reusing the running stack")
    try:
        settings = settings or aws_resources.AwsResourceSettings.from_env()
        # The subscriber queue is read after the run: it must keep the run's first notifications that long.
        settings = replace(settings, queue_retention_s=max(settings.queue_retention_s,
                                                           int(seconds + drain_timeout_s + 120)))
        clients = aws_resources.AwsClients()
        say("deploying topic, role, function and demo subscriber")
        resources = aws_resources.deploy_resources(settings, clients, say=lambda m: say("  " + m))
        queue_url = resources.get("queue_url") or clients.sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
        stale = drain_queue(clients, queue_url, quiet_s=1.0)
        if stale:
            say(f"discarded {stale} notification(s) left in the demo queue by an earlier run")
        return _run(cfg, settings, clients, queue_url, seconds, aircraft, interval, seed, summary_path,
                    drain_timeout_s, begun, keep_stack, closers)
    finally:
        for close in reversed(closers):  # what _run started and stops only after its summary (or a failure)
            close()
        if started_stack and not keep_stack:
            say("stopping the stack (use --keep-stack to leave it running)")
            stack.down()


def _run(cfg, settings, clients, queue_url, seconds, aircraft, interval, seed, summary_path, drain_timeout_s,
         begun, keep_stack: bool, closers: list) -> dict:
    kafka = KafkaSettings.from_env(bootstrap_servers=cfg.bootstrap)
    run_id = uuid.uuid4().hex[:8]
    since = datetime.now(timezone.utc)
    since_ms = int(since.timestamp() * 1000)
    trigger = Trigger(TriggerConfig.from_env(
        topic=cfg.topic, group_id=f"demo-{run_id}", starting_position="AT_TIMESTAMP",
        starting_position_timestamp=since.timestamp(), function_name=settings.function_name,
        dlq_topic=cfg.dlq_topic, kafka=kafka))
    trigger_stop = threading.Event()
    trigger_thread = threading.Thread(target=trigger.run, kwargs={"stop_event": trigger_stop},
                                      name="demo-trigger", daemon=True)
    producer_cfg = ProducerConfig.from_env(source="synthetic", topic=cfg.topic, aircraft=aircraft, seed=seed,
                                           interval_s=interval, duration_s=seconds, kafka=kafka)
    producer_result: dict = {}

    def produce():
        producer_result["stats"] = run_producer(producer_cfg)

    producer_thread = threading.Thread(target=produce, name="demo-producer", daemon=True)
    alerts = DemoAlerts(clients, cfg.topic, kafka, run_id, since, say)  # a second mapping: flight-alerts
    say(f"run {run_id}: {aircraft} synthetic aircraft every {interval:g}s for {seconds:g}s "
        f"-> {cfg.topic} -> trigger (group demo-{run_id}) -> {settings.function_name} -> {settings.topic_name}")
    tracker = DemoTracker(cfg.topic, kafka, run_id)
    tracker.start(since)
    closers.append(lambda: tracker.close(keep_running=keep_stack))
    lake = DemoLake(cfg.topic, kafka, run_id)
    closers.append(lake.stop)  # a no-op once finish() has stopped it; otherwise the run failed on the way
    lake.start()  # after the tracker: it starts PostgreSQL (the lake's catalog is there) when it is not up
    trigger_thread.start()
    alerts.start()
    producer_thread.start()

    def progress(phase: str) -> None:
        st = trigger.stats
        say(f"{phase:9s} {time.monotonic() - t0:5.0f}s  consumed {st.consumed:>7,}  invoked {st.invocations:>5,} "
            f"calls  committed {st.committed:>7,}  lag {st.lag:>6,}  retries {st.retries}  "
            f"dead-lettered {st.dead_lettered}  invoke p50 {st.invoke_p50_ms:.0f} ms")

    t0 = time.monotonic()
    while producer_thread.is_alive():
        producer_thread.join(timeout=5)
        progress("producing")
    produced_stats = producer_result.get("stats")
    produced = produced_stats.published if produced_stats else 0
    # Drain: everything produced is committed (handled or dead-lettered) before we count.
    deadline = time.monotonic() + drain_timeout_s
    while min(trigger.stats.committed, alerts.trigger.stats.committed) < produced and time.monotonic() < deadline:
        time.sleep(2)
        progress("draining")
    trigger_stop.set()
    trigger_thread.join(timeout=60)
    alerts.stop()
    tstats = trigger.stats
    progress("done")
    tracked = tracker.finish(produced)
    say(f"lake: waiting for {lake.name} to hold the run, stopping the archiver (SIGTERM flushes it), "
        "building gold for the run's day(s)")
    lake_result = lake.finish(tracked.ranges, tracked.keys, tracked.malformed)

    say("counting: subscriber queue, dead-letter topic, function metrics, read-back of the run's records")
    received = drain_queue(clients, queue_url)
    dead = observe.records_since(kafka, cfg.dlq_topic, since_ms)
    recount = observe.recount(observe.read_topic(kafka, cfg.topic, since_ms))
    invalid = len(recount.invalid)
    expected_at_subscriber = recount.expected_at(settings.notify_countries)
    end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    metrics = {name: observe.metric_sum(name, since, end, settings, clients)
               for name in ("Received", "InAir", "Published", "Failed")}
    # `make count-messages mins=N` covers whole minutes back from now: what this function published
    # in that window before the run started is counted too, and is known, so the check stays exact.
    mins = max(1, int((end - since).total_seconds() // 60) + 1)
    counted = observe.count_messages(mins, settings, clients)
    published_before = observe.metric_sum("Published", end - timedelta(minutes=mins), since, settings, clients)

    # At-least-once: a batch retried after a partial failure or a crash is invoked again. The trigger
    # knows how many records it sent; with no re-sends every count must match exactly, otherwise the
    # function's counts may exceed the recount by at most that many.
    duplicates = tstats.invoked_records - produced
    slack = max(0, duplicates)

    def within(actual: int, expected: int) -> bool:
        return expected <= actual <= expected + slack

    alert_summary, alert_checks = alerts.reconcile(since_ms)
    checks = alert_checks + [
        ("every produced record is in Kafka", produced == recount.records, f"{produced} vs {recount.records}"),
        ("the trigger committed every record", tstats.committed == produced, f"{tstats.committed} vs {produced}"),
        ("the function received what the trigger sent (nothing else invoked it)",
         metrics["Received"] == tstats.invoked_records, f"{metrics['Received']} vs {tstats.invoked_records}"),
        ("the function received every record", within(metrics["Received"], produced),
         f"{metrics['Received']} vs {produced}"),
        ("in the air matches the recount", within(metrics["InAir"], recount.in_air),
         f"{metrics['InAir']} vs {recount.in_air}"),
        ("published + failed = in the air", metrics["Published"] + metrics["Failed"] == metrics["InAir"] + invalid,
         f"{metrics['Published']} + {metrics['Failed']} vs {metrics['InAir']} + {invalid} invalid"),
        ("nothing valid was dead-lettered", dead == invalid, f"{dead} vs {invalid} invalid"),
        ("the subscriber got every matching notification", within(received, expected_at_subscriber),
         f"{received} vs {expected_at_subscriber}"),
        ("make count-messages agrees", counted == published_before + metrics["Published"],
         f"{counted} vs {published_before} before the run + {metrics['Published']}"),
        *tracked.checks,
        *lake_result.checks,
    ]
    summary = {
        "run_id": run_id,
        "started_at": since.isoformat().replace("+00:00", "Z"),
        "duration_s": round(time.monotonic() - begun, 1),
        "settings": {"aircraft": aircraft, "interval_s": interval, "seconds": seconds, "seed": seed,
                     "function": settings.function_name, "topic": cfg.topic,
                     "subscriber_countries": list(settings.notify_countries)},
        "produced": produced,
        "in_kafka": recount.records,
        "in_air_by_recount": recount.in_air,
        "on_ground_or_no_position": recount.filtered,
        "invalid": invalid,
        "trigger": {"consumed": tstats.consumed, "invoked_records": tstats.invoked_records,
                    "invocations": tstats.invocations,
                    "committed": tstats.committed, "retries": tstats.retries,
                    "dead_lettered": tstats.dead_lettered, "invoke_p50_ms": tstats.invoke_p50_ms,
                    "invoke_p99_ms": tstats.invoke_p99_ms},
        "function_metrics": metrics,
        "duplicates_invoked": duplicates,
        "published_to_sns": metrics["Published"],
        "received_by_subscriber": received,
        "expected_at_subscriber": expected_at_subscriber,
        "dead_lettered": dead,
        "count_messages": {"mins": mins, "value": counted, "published_before_run_in_window": published_before},
        "top_countries": dict(recount.countries.most_common(8)),
        "tracker": {"rows_stored": tracked.rows, "distinct_positions_in_kafka": tracked.distinct_positions,
                    "rejects": tracked.rejects},
        "lake": lake_result.summary(tracked.ranges),
        "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
        "alerts": alert_summary,
        "reconciled": all(ok for _, ok, _ in checks),
    }
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, summary_path)
    return summary


def _print_summary(s: dict, path: Path) -> None:
    rows = [
        ("states produced", s["produced"]),
        ("  of which in the air (recount)", s["in_air_by_recount"]),
        ("  on the ground / no position", s["on_ground_or_no_position"]),
        ("records invoked (function Received)", s["function_metrics"]["Received"]),
        ("  duplicates (at-least-once)", s["duplicates_invoked"]),
        ("in the air (function InAir)", s["function_metrics"]["InAir"]),
        ("published to SNS", s["published_to_sns"]),
        ("received by demo subscriber", s["received_by_subscriber"]),
        ("  expected (countries " + ", ".join(s["settings"]["subscriber_countries"]) + ")",
         s["expected_at_subscriber"]),
        ("dead-lettered", s["dead_lettered"]),
        ("alerts raised (" + ", ".join(f"{k} {v}" for k, v in sorted(s["alerts"]["by_type"].items())) + ")",
         s["alerts"]["unique"]),
        ("  expected by the recount", s["alerts"]["expected_by_recount"]),
        ("  duplicates (re-sent from the outbox)", s["alerts"]["duplicates"]),
        (f"make count-messages mins={s['count_messages']['mins']}", s["count_messages"]["value"]),
        ("positions stored by the tracker (PostgreSQL)", s["tracker"]["rows_stored"]),
        (f"positions archived in the lake ({s['lake']['table']})", s["lake"]["rows_of_run"] or 0),
        *((f"  gold positions {g['day']} (whole day, gold_daily_country)", g["gold_positions"])
          for g in s["lake"]["gold"]),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print("=" * (width + 14))
    print(f" demo {s['run_id']} summary ({s['duration_s']:.0f}s)")
    print("=" * (width + 14))
    for label, value in rows:
        print(f" {label:<{width}}  {value:>10,}")
    print("-" * (width + 14))
    for check in s["checks"]:
        print(f" [{'ok' if check['ok'] else 'FAIL'}] {check['check']} ({check['detail']})")
    if s["count_messages"]["published_before_run_in_window"]:
        print(f" note: count-messages includes {s['count_messages']['published_before_run_in_window']:,} "
              "published before this run in the same minutes")
    print(" RECONCILED: every number adds up." if s["reconciled"]
          else " DOES NOT ADD UP: see the FAIL lines above.")
    print(f" summary written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.demo.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="how long the producer runs (default 60)")
    parser.add_argument("--aircraft", type=int, default=1500, help="synthetic fleet size (default 1500)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between fleet snapshots (default 5)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep-stack", action="store_true", help="leave Kafka and MiniStack running afterwards")
    parser.add_argument("--summary", type=Path, default=DEFAULT_SUMMARY, help=f"JSON summary (default {DEFAULT_SUMMARY})")
    parser.add_argument("--verbose", action="store_true", help="show the producer's and trigger's own log lines")
    args = parser.parse_args(argv)
    configure_logging(level="INFO" if args.verbose else "WARNING", fmt="console")
    try:
        summary = run_demo(args.seconds, args.aircraft, args.interval, args.seed, args.keep_stack, args.summary)
    except stack.StackError as exc:
        progress.say(f"error: {exc}", "[demo]", stderr=True)
        return 1
    except KeyboardInterrupt:
        progress.say("interrupted", "[demo]", stderr=True)
        return 130
    return 0 if summary["reconciled"] else 1


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
