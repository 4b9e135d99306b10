"""python -m archiver: every record of the topic into the lake's Iceberg positions table, exactly once
(offsets in each snapshot; a restart resumes from the table). SIGTERM/SIGINT commit what is buffered, then exit 0.

Settings come from the environment (docs/CONFIGURATION.md); each flag below overrides its variable.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from pipeline_common.kafka_client import BrokerUnavailable
from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

from .settings import ArchiverConfig

logger = logging.getLogger("archiver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m archiver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    ArchiverConfig.add_flags(parser)
    parser.add_argument("--log-level", help="LOG_LEVEL (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = ArchiverConfig.from_args(args)
    except ConfigError as exc:
        print(f"archiver: configuration error: {exc}", file=sys.stderr)
        return 2

    # Before the slow imports: a SIGTERM while starting stops it cleanly (exit 0), not by the default action.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    from .archiver import Archiver  # PyIceberg and pyarrow load after the settings are known to be right
    try:
        Archiver(config).run(stop)
    except BrokerUnavailable as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
