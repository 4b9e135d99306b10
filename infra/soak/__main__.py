"""`python -m infra.soak --minutes 30`: run the typical session on a fresh stack and write docs/SOAK.md.

Exit 0 when every gate passes and every record reconciles, 1 otherwise (the report says why), 2 on a
bad argument. The stack runs in its own state folder (.state/soak/) on the ports of KAFKA_PORT,
KAFKA_CONTROLLER_PORT, AWS_PORT and POSTGRES_PORT, and is stopped at the end unless --keep-stack; the
session's tracker serves its API on TRACKER_API_PORT (8000, as `make tracker`: give the soak other
ports, all five, beside a running stack and tracker).
"""
from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from pathlib import Path

from infra import progress
from pipeline_common.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent.parent


def build_parser() -> argparse.ArgumentParser:
    from infra.soak.report import ministack_bound_defaults

    p = argparse.ArgumentParser(prog="python -m infra.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long the session runs (default 30)")
    p.add_argument("--interval-s", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "SOAK.md", help="report (default docs/SOAK.md)")
    p.add_argument("--plots", type=Path, default=None, help="folder of the PNG plots (default: soak/ beside the report)")
    p.add_argument("--results", type=Path, default=ROOT / ".state" / "soak-results.json", help="raw samples (JSON)")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state" / "soak",
                   help="the soak's own stack state folder (wiped at start)")
    p.add_argument("--producer-args", default="", metavar="ARGS",
                   help='extra arguments for `make produce`, e.g. "--aircraft 8000 --interval 1" (a heavier load)')
    p.add_argument("--trigger-args", default="", metavar="ARGS", help="extra arguments for `make trigger`")
    p.add_argument("--drain-timeout-s", type=float, default=300.0,
                   help="how long the consumers may take to catch up after the producer stops (default 300)")
    p.add_argument("--maintenance-interval-s", type=float, default=120.0, metavar="S",
                   help="the tracker's maintenance pass (retention, partitions) runs this often: given to it as "
                        "TRACKER_MAINTENANCE_INTERVAL_S, whatever your environment says (default 120: a 30-minute "
                        "soak crosses it ~15 times; the tracker's own default is 3600)")
    p.add_argument("--ministack-retention-s", type=float, default=120.0, metavar="S",
                   help="MiniStack keeps log streams and raw CloudWatch datapoints this long: given to it as "
                        "MINISTACK_LOGS_KEEP_S and MINISTACK_METRICS_RAW_S (default 120: a 10-minute soak crosses both "
                        "bounds from its warm-up on; their own defaults, %d and %d, would first act after the "
                        "memory gate of a short run has been judged)" % ministack_bound_defaults())
    p.add_argument("--keep-stack", action="store_true", help="leave the soak's stack running afterwards")
    p.add_argument("--from-json", type=Path, metavar="RESULTS",
                   help="write the report and plots again from a run's raw samples (runs nothing)")
    return p


def interruptible() -> None:
    """Started in the background by a shell (`make soak &`, nohup), the soak finds Ctrl-C (SIGINT) ignored,
    and its children would inherit that: the printers, which stop on Ctrl-C and then report their count,
    could not be stopped. A handled signal is reset to the default in a child, so handle it here."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM (kill, a CI timeout) stops the soak as Ctrl-C does, through its clean-up: Python's default for
    # SIGTERM exits at once, leaving the session's parts running and the soak's own stack up.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.minutes <= 0 or args.interval_s <= 0 or args.maintenance_interval_s < 0.1 \
            or args.ministack_retention_s < 60:
        print("error: --minutes and --interval-s must be > 0, --maintenance-interval-s >= 0.1, "
              "--ministack-retention-s >= 60", file=sys.stderr)
        return 2
    # The soak's terminal is for its own lines: kafka-python's ("Task ... is blocking the event loop") go to
    # KAFKA_CLIENT_LOG, as every component's do on a console.
    configure_logging(level="WARNING", fmt="console")
    interruptible()
    from infra.soak import report
    from infra.soak.run import SoakConfig, run_soak, write_results

    if args.from_json:
        result = json.loads(args.from_json.read_text())
        report.write(result, args.report, args.plots, result.get("command", "make soak"))
        progress.say(f"{args.report} written again from {args.from_json}", "[soak]")
        return 0

    cfg = SoakConfig(minutes=args.minutes, interval_s=args.interval_s, state_dir=args.state_dir,
                     report=args.report, results=args.results, drain_timeout_s=args.drain_timeout_s,
                     keep_stack=args.keep_stack, maintenance_interval_s=args.maintenance_interval_s,
                     ministack_retention_s=args.ministack_retention_s,
                     part_args={"producer": args.producer_args, "trigger": args.trigger_args})
    command = " ".join(["python -m infra.soak", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    try:
        result = run_soak(cfg)
    except KeyboardInterrupt:
        progress.say("interrupted", "[soak]", stderr=True)
        return 130
    except RuntimeError as exc:
        progress.say(f"error: {exc}", "[soak]", stderr=True)
        return 1
    result["command"] = command
    write_results(result, cfg.results)
    report.write(result, cfg.report, args.plots, command)
    failed = [g for g in result["gates"] if not g["ok"]]
    missing = [c for c in result["reconciliation"]["checks"] if not c["ok"]]
    for g in failed:
        progress.say(f"FAIL {g['name']}: {g['measured']} ({g['detail']})", "[soak]")
    for c in missing:
        progress.say(f"FAIL {c['check']}: {c['detail']}", "[soak]")
    progress.say(f"{'PASSED' if result['passed'] else 'FAILED'}: report {cfg.report}, raw samples {cfg.results}", "[soak]")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
