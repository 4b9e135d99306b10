"""Command line: ``python -m producer --source opensky|synthetic|replay [options]`` (see --help)."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

from .kafka_sink import BrokerUnavailable
from .runner import ProducerError, run_producer
from .settings import SOURCE_CHOICES, ProducerConfig, parse_bbox, parse_icao24

logger = logging.getLogger("producer")

EPILOG = """\
Every option can also come from the environment (the command line wins):
  PRODUCER_SOURCE, PRODUCER_INTERVAL, PRODUCER_DURATION, PRODUCER_MAX_TICKS, PRODUCER_AIRCRAFT,
  PRODUCER_SEED, PRODUCER_RATE, PRODUCER_START_TIME, PRODUCER_BBOX, PRODUCER_ICAO24, KAFKA_TOPIC,
  PRODUCER_EXPORT_CSV, PRODUCER_REPLAY, PRODUCER_BATCH_ROWS, PRODUCER_BATCH_DELAY,
  PRODUCER_CONNECT_TIMEOUT; OpenSky: OPENSKY_CLIENT_ID, OPENSKY_CLIENT_SECRET (OAuth2 client
  credentials; anonymous when unset), OPENSKY_API_URL, OPENSKY_TOKEN_URL, OPENSKY_TIMEOUT,
  OPENSKY_MAX_RETRIES, OPENSKY_MAX_RETRY_AFTER, OPENSKY_DAILY_CREDITS, OPENSKY_BUDGET_FRACTION; Kafka: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
  KAFKA_SASL_*, KAFKA_SSL_*; logging: LOG_LEVEL, LOG_FORMAT=json|console.

Examples:
  python -m producer --source synthetic --aircraft 2000 --duration 60
  python -m producer --source synthetic --rate 2000 --duration 30
  python -m producer --source opensky --bbox 45.8,5.9,47.8,10.5
  python -m producer --source synthetic --export-csv traffic.csv --ticks 10
  python -m producer --source replay --replay traffic.csv --batch-rows 7000 --batch-delay 1
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m producer", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Publish aircraft states (one JSON message per aircraft, "
                                            "key icao24) to Kafka, or export them to CSV.")
    p.add_argument("--source", choices=SOURCE_CHOICES, help="where states come from (default synthetic)")
    p.add_argument("--interval", type=float, metavar="S",
                   help="seconds between polls/ticks (default: OpenSky resolution 10 s anonymous / 5 s "
                        "authenticated, never less; synthetic 1 s)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until stopped)")
    p.add_argument("--max-ticks", "--ticks", dest="max_ticks", type=int, metavar="N",
                   help="stop after N polls/ticks/batches")
    p.add_argument("--aircraft", type=int, metavar="N", help="synthetic fleet size (default 8000)")
    p.add_argument("--seed", type=int, help="synthetic random seed (default 42)")
    p.add_argument("--rate", type=float, metavar="R",
                   help="synthetic: emit exactly R positions/s in total (benchmark load)")
    p.add_argument("--start-time", type=float, metavar="EPOCH",
                   help="synthetic: simulated start time (default now); makes exports reproducible")
    p.add_argument("--bbox", metavar="LAMIN,LOMIN,LAMAX,LOMAX", help="OpenSky bounding box in degrees")
    p.add_argument("--icao24", action="append", metavar="HEX[,HEX]",
                   help="OpenSky: only these transponders (repeat or comma-separate)")
    p.add_argument("--daily-credits", type=int, metavar="N",
                   help="OpenSky credits per day (default 400 anonymous / 4000 authenticated; feeders 8000)")
    p.add_argument("--budget-fraction", type=float, metavar="F",
                   help="share of the daily OpenSky credits this producer may spend, 0 < F <= 1 (default 1); "
                        "polls are spread so that share lasts until the credits renew")
    p.add_argument("--topic", help="Kafka topic (default aviation-data)")
    p.add_argument("--export-csv", metavar="PATH", help="write states to a CSV file instead of Kafka")
    p.add_argument("--replay", metavar="PATH", help="CSV file to replay (with --source replay)")
    p.add_argument("--batch-rows", type=int, metavar="N", help="replay: rows per micro-batch (default 7000)")
    p.add_argument("--batch-delay", type=float, metavar="S", help="replay: seconds between batches (default 1)")
    p.add_argument("--connect-timeout", type=float, metavar="S",
                   help="keep retrying an unreachable broker this long at start (default 120)")
    return p


def config_from_args(args: argparse.Namespace) -> ProducerConfig:
    opensky = {"daily_credits": args.daily_credits, "budget_fraction": args.budget_fraction}
    return ProducerConfig.from_env(
        opensky={k: v for k, v in opensky.items() if v is not None},
        source=args.source, interval_s=args.interval, duration_s=args.duration, max_ticks=args.max_ticks,
        aircraft=args.aircraft, seed=args.seed, rate=args.rate, start_time=args.start_time,
        bbox=parse_bbox(args.bbox, "--bbox") if args.bbox else None,
        icao24=parse_icao24(",".join(args.icao24), "--icao24") if args.icao24 else None,
        topic=args.topic, export_csv=args.export_csv, replay=args.replay, batch_rows=args.batch_rows,
        batch_delay_s=args.batch_delay, connect_timeout_s=args.connect_timeout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum, _frame):
        logger.info("received %s: flushing and stopping", signal.Signals(signum).name)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stats = run_producer(config, stop)
    except (BrokerUnavailable, ProducerError) as exc:
        logger.error("%s", exc)
        return 1
    print(json.dumps(stats.as_dict()))
    return 1 if stats.failed else 0


if __name__ == "__main__":
    sys.exit(main())
