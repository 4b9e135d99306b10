"""python -m tracker: the Kafka consumer (group flight-tracker) and the REST/WebSocket API + map, in one process.

Settings come from the environment (docs/CONFIGURATION.md); each flag below overrides its variable.
"""
from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys

from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

from .settings import TrackerConfig

logger = logging.getLogger("tracker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tracker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    TrackerConfig.add_flags(parser)
    parser.add_argument("--no-api", action="store_true", help="consume and store only, serve nothing")
    parser.add_argument("--log-level", help="LOG_LEVEL (default INFO)")
    return parser


def tune_gc() -> None:
    """Each record leaves a few containers behind for a moment (the decoded dict, the row, the live
    picture's entries); reference counting frees nearly all of them, yet with the collector's default
    threshold (700) it scanned the young objects every few hundred records: ~20% of decoding and
    applying a record, measured. Collect every 50,000 instead, and leave the objects of start-up
    (modules, the app) out of every scan."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = TrackerConfig.from_args(args)
    except ConfigError as exc:
        print(f"tracker: configuration error: {exc}", file=sys.stderr)
        return 2

    from .service import TrackerService

    service = TrackerService(config, serve_api=not args.no_api)
    tune_gc()
    # SIGINT/SIGTERM: stop consuming, write and commit what is batched, stop serving.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.consumer.stop())
    try:
        service.start()
    except RuntimeError as exc:
        logger.error("%s", exc)
        return 1
    while not service.wait(0.5):  # short waits: signal handlers run on the main thread between them
        pass
    service.stop()
    return 1 if service.failure else 0


if __name__ == "__main__":
    sys.exit(main())
