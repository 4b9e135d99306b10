#!/usr/bin/env python3
"""Benchmarks of the whole pipeline on the native stack, in one go; writes docs/BENCHMARKS.md.

    make bench                                   # everything, about 6 minutes on 2 cores + the lake's ~10
    python -m infra.bench.run --sections tracker,archive,lakequery --lake-rows 100000   # the lake's, small
    python -m infra.bench.run --sections sink,e2e --loads 500,1000 --out /tmp/b.md

Sections: sink (PublishBatch ceiling, 1 and 4 threads), e2e (producer -> Kafka -> trigger -> Lambda
-> SNS -> subscriber at rising loads until saturation, with latency), capacity (no sink: every
record filtered out), seed (one invoke per message), growth (partitions x concurrency, batch
size, peak RSS), map (Kafka record -> tracker -> live map in headless Chromium latency, redraw time),
format (JSON vs Protobuf records: bytes per record and capacity, in the same run), archive (Kafka -> archiver
-> Iceberg: positions/s, CPU per position beside the tracker's ingest, bytes per position in Parquet vs JSON vs
Protobuf), lakequery (a day of synthetic positions in Iceberg: distinct aircraft per country per hour with
DuckDB and with Spark, answers compared).
Starts the stack if it is not running and stops it afterwards only then; every
topic, group, function and queue it creates carries the run id and is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from infra.stack import servers as stack
from infra.bench import capacity, end_to_end, growth, machine, map_latency, procstat, report, seed_design, sink_ceiling
from infra.bench import history_ingest as tracker_section
from infra.bench import lake as lake_section
from infra.bench import wire_format
from infra.bench.session import STATE_DIR, Session
from infra.progress import printer

ROOT = Path(__file__).resolve().parent.parent.parent

SECTIONS = ("sink", "e2e", "capacity", "seed", "growth", "map", "tracker", "format", "archive", "lakequery")
DEFAULT_OUT = ROOT / "docs" / "BENCHMARKS.md"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need positive integers")
    return values


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--sections", type=_sections, default=SECTIONS, help=f"comma list of {', '.join(SECTIONS)} (default: all)")
    a("--out", type=Path, help=f"Markdown report (default {DEFAULT_OUT.relative_to(ROOT)} when every section runs)")
    a("--json", type=Path, help="raw results (default .state/bench/results-<run id>.json)")
    a("--sink-messages", type=int, default=20_000, help="messages per sink-ceiling run (default 20000)")
    a("--loads", type=_ints, default=(250, 500, 1000, 2000), help="offered positions/s (default 250,500,1000,2000)")
    a("--load-seconds", type=float, default=10, help="seconds the producer offers each load (default 10)")
    a("--extra-steps", type=int, default=3,
      help="after the listed loads, raise the load by half at most this often until saturation (default 3)")
    a("--e2e-batch-size", type=int, default=1000, help="trigger batch size in the end-to-end runs (default 1000)")
    a("--step-positions", type=int, default=10_000,
      help="at most this many positions per end-to-end load step (the queue is drained after each; default 10000)")
    a("--capacity-records", type=int, default=500_000, help="records for the no-sink capacity run (default 500000)")
    a("--capacity-batch-size", type=int, default=10_000, help="trigger batch size of the capacity run (default 10000)")
    a("--seed-records", type=int, default=3_000, help="records pre-filled for the seed design (default 3000)")
    a("--seed-seconds", type=float, default=15, help="how long the seed design runs (default 15)")
    a("--growth-records", type=int, default=150_000, help="records per partitions x concurrency topic (default 150000)")
    a("--growth-seconds", type=float, default=12, help="longest growth run (default 12)")
    a("--map-rate", type=int, default=1000, help="map: positions/s offered to the tracker and the page (default 1000)")
    a("--map-seconds", type=float, default=20, help="map: seconds of load (default 20)")
    a("--map-aircraft", type=int, default=10_000, help="map: fleet size, all of it on the page (default 10000)")
    a("--tracker-aircraft", type=int, default=10_000, help="live aircraft in the tracker section (default 10000)")
    a("--tracker-ticks", type=int, default=20,
      help="positions per aircraft pre-filled for the tracker's ingest (default 20)")
    a("--format-records", type=int, default=100_000,
      help="format: records per wire format (JSON, then Protobuf) for the capacity comparison (default 100000)")
    a("--archive-aircraft", type=int, default=10_000,
      help="archive: aircraft of the synthetic fleet pre-filled for the archiver (default 10000, as the tracker's)")
    a("--archive-ticks", type=int, default=20,
      help="archive: positions per aircraft, 10 s apart (default 20: the tracker section's record count)")
    a("--lake-rows", type=int, default=10_000_000,
      help="lakequery: synthetic positions of one UTC day in the Iceberg table (default 10000000)")
    a("--lake-aircraft", type=int, default=10_000, help="lakequery: aircraft in that day (default 10000)")
    a("--lake-appends", type=int, default=4, help="lakequery: appends (commits) writing the day (default 4)")
    a("--keep-stack", action="store_true", help="leave a stack this command started running")
    a("--from-json", type=Path, metavar="RESULTS",
      help="run nothing: write the report (--out, default docs/BENCHMARKS.md) from a saved results file")
    return p


SOAK_SUMMARY = ROOT / "docs" / "soak" / "summary.json"


def _latest_soak() -> dict | None:
    """The committed soak's summary (infra/soak/report.summary): the session's sustained rate, stated beside
    this run's component figures."""
    try:
        return json.loads(SOAK_SUMMARY.read_text())
    except (OSError, ValueError):
        return None


def _uptime_min(pid: int | None) -> float | None:
    """How long a process has run: MiniStack slows down as it accumulates state (e.g. every metric ever put)."""
    started = procstat.start_time_s(pid) if pid else None
    return round((procstat.uptime_s() - started) / 60, 1) if started is not None else None


say = printer("[bench]")


_STACK_VARIABLES = ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "AWS_PORT", "POSTGRES_PORT", "STACK_STATE_DIR")


def command_line(argv: list[str]) -> str:
    """The command as typed, with the variables that chose the stack (other ports, another state dir)."""
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in _STACK_VARIABLES if os.environ.get(k))
    exact = " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", "infra.bench.run", *argv])
    if os.environ.get("MAKELEVEL"):
        args = f' ARGS="{" ".join(argv)}"' if argv else ""
        return f"{env + ' ' if env else ''}make bench{args}  (runs {exact})"
    return f"{env + ' ' if env else ''}{exact}"


def run_sections(args: argparse.Namespace, session: Session, results: dict) -> None:
    wanted = args.sections
    if "sink" in wanted:
        results["sink"] = sink_ceiling.run(session, args.sink_messages)
    if "e2e" in wanted:
        results["end_to_end"] = end_to_end.run(session, args.loads, args.load_seconds, args.extra_steps,
                                               ("--batch-size", str(args.e2e_batch_size)), args.step_positions)
    if "capacity" in wanted or "growth" in wanted:
        cap = capacity.run(session, args.capacity_records, args.capacity_batch_size)
        if "capacity" in wanted:
            results["capacity"] = cap
    else:
        cap = None
    if "seed" in wanted:
        results["seed"] = seed_design.run(session, args.seed_records, args.seed_seconds)
    if "growth" in wanted:
        results["growth"] = growth.run(session, cap, args.growth_records, max_seconds=args.growth_seconds)
    if "map" in wanted:
        results["map"] = map_latency.run(session, args.map_rate, args.map_seconds, args.map_aircraft)
    if "tracker" in wanted:
        results["tracker"] = tracker_section.run(session, args.tracker_aircraft, args.tracker_ticks)
    if "format" in wanted:
        results["format"] = wire_format.run(session, args.format_records, args.capacity_batch_size)
    if "archive" in wanted:
        results["archive"] = lake_section.run_archive(session, args.archive_aircraft, args.archive_ticks)
    if "lakequery" in wanted:
        results["lakequery"] = lake_section.run_query(session, args.lake_rows, args.lake_aircraft, args.lake_appends)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        # The session's row is the soak's latest run, not this bench run's: a re-render states the newest one.
        results["session"] = _latest_soak() or results.get("session")
        results["targets"] = report.evaluate_targets(results)
        out = args.out or DEFAULT_OUT
        out.write_text(report.render(results))
        print(f"report {out} written from {args.from_json} (run {results.get('run_id')})")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python logs every refused connection of the "is a broker running?" probe, and "group_id is
    # None" of every offset lookup; the harness reports what matters itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    cfg = stack.StackConfig.from_env()
    # Everything targets the stack this run checks or starts (KAFKA_PORT, AWS_PORT), whatever endpoint the
    # environment names; region and fake credentials as the Makefile exports them, when run directly.
    os.environ["AWS_ENDPOINT_URL"] = cfg.endpoint
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = cfg.bootstrap
    for key, value in {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        os.environ.setdefault(key, value)
    began = time.monotonic()
    results: dict = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                     "command": command_line(argv), "machine": machine.describe(),
                     "load_before": machine.load_average(), "sections": list(args.sections), "errors": {}}
    started_stack = False
    if not (stack.kafka_ready(cfg.bootstrap) and stack.endpoint_ready(cfg.endpoint)):
        say(f"starting the native stack (Kafka {cfg.bootstrap}, MiniStack {cfg.endpoint})")
        stack.up(cfg)
        started_stack = True
    else:
        say(f"reusing the running stack (Kafka {cfg.bootstrap}, endpoint {cfg.endpoint})")
    results["stack"] = {"bootstrap": cfg.bootstrap, "endpoint": cfg.endpoint, "started_by_this_run": started_stack,
                        "ministack_uptime_min": _uptime_min(stack._read_pid("ministack"))}
    session = Session(cfg.bootstrap, cfg.endpoint)
    results["run_id"] = session.run_id
    say(f"run {session.run_id}: sections {', '.join(args.sections)}; machine {results['machine']['cores']} cores, "
        f"load average {results['load_before'][0]:.2f}")
    try:
        run_sections(args, session, results)
    except KeyboardInterrupt:
        results["errors"]["interrupted"] = "interrupted by the user"
        say("interrupted: cleaning up")
    except Exception as exc:  # noqa: BLE001 - still clean up and report what was measured
        results["errors"]["failed"] = f"{type(exc).__name__}: {exc}"
        say(f"error: {exc}")
        traceback.print_exc()
    finally:
        say("deleting the run's topics, groups, function, SNS topics and queues")
        session.cleanup()
        if started_stack and not args.keep_stack:
            say("stopping the stack this command started")
            stack.down()

    results["duration_s"] = round(time.monotonic() - began, 1)
    results["session"] = _latest_soak()
    results["targets"] = report.evaluate_targets(results)
    json_path = args.json or STATE_DIR / f"results-{session.run_id}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    out = args.out or (DEFAULT_OUT if set(args.sections) == set(SECTIONS) and not results["errors"] else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.render(results))
    print()
    for t in results["targets"]:
        mark = "n/a " if t["met"] is None else ("MET " if t["met"] else "NOT MET")
        print(f"  [{mark:7s}] {t['target']}: {t['shown']}")
    print(f"\n  results: {json_path}" + (f"\n  report:  {out}" if out else ""))
    print(f"  took {results['duration_s'] / 60:.1f} min")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
