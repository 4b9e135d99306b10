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
from .settings import ProducerConfig

logger = logging.getLogger("producer")

EPILOG = """\
Every option can also come from the environment variable named in its help; the command line wins.
OPENSKY_CLIENT_SECRET and KAFKA_SASL_PASSWORD are read from the environment only. Logging:
LOG_LEVEL, LOG_FORMAT=json|console.

Examples:
  python -m producer --source synthetic --aircraft 2000 --duration 60
  python -m producer --source synthetic --rate 2000 --duration 30
  python -m producer --source opensky --bbox 45.8,5.9,47.8,10.5
  python -m producer --source synthetic --export-csv traffic.csv --ticks 10
  python -m producer --source synthetic --aircraft 1000 --start-time 1633564800 --interval 1 --ticks 6
  python -m producer --source replay --replay traffic.csv --batch-rows 7000 --batch-delay 1

With --start-time and Kafka output the synthetic fleet runs on simulated time: a tick every
--interval seconds of wall clock, tick n stamped start time + n x interval (the states an
--export-csv with the same flags writes), so a past day is produced without waiting for it.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m producer", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Publish aircraft states (one JSON message per aircraft, "
                                            "key icao24) to Kafka, or export them to CSV.")
    ProducerConfig.add_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        config = ProducerConfig.from_args(args)
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
