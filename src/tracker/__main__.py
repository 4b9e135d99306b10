"""python -m tracker: the Kafka consumer (group flight-tracker) and the REST/WebSocket API + map, in one process.

Settings come from the environment (README, "Environment"); each flag below overrides its variable.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = TrackerConfig.from_args(args)
    except ConfigError as exc:
        print(f"tracker: configuration error: {exc}", file=sys.stderr)
        return 2

    from .consumer import BrokerUnavailable, TrackerConsumer, TrackerStats
    from .live import LivePicture

    live = LivePicture(config.stale_after_s, config.max_aircraft)
    stats = TrackerStats()
    consumer = TrackerConsumer(config, live, stats)
    stop = threading.Event()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            consumer.run(stop)
        except BrokerUnavailable as exc:
            failure.append(exc)
            logger.error("%s", exc)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread, which exits non-zero
            failure.append(exc)
            logger.exception("tracker consumer stopped on an error")
        finally:
            if server is not None:
                server.should_exit = True

    server = None
    if not args.no_api:
        import uvicorn
        from psycopg_pool import ConnectionPool

        from .api.app import create_app
        from .api.deps import AppState
        from .flight_view import FlightJsonCache

        pool = ConnectionPool(config.database, min_size=1, max_size=8, open=False,
                              kwargs={"application_name": "flight-tracker-api", "connect_timeout": 3})
        pool.open(wait=False)

        def kafka_problem() -> str | None:
            if stats.kafka_error:
                return stats.kafka_error
            if time.time() - stats.last_poll > 30:
                return "the consumer has not polled Kafka for more than 30 s"
            return None

        app = create_app(AppState(config, live, stats, pool, kafka_problem, FlightJsonCache()))
        server = uvicorn.Server(uvicorn.Config(app, host=config.api_host, port=config.api_port,
                                               log_config=None, access_log=False, ws="websockets"))
    thread = threading.Thread(target=consume, name="tracker-consumer", daemon=True)
    thread.start()
    try:
        if server is not None:
            logger.info("tracker API and map on http://%s:%d/ (OpenAPI: /docs)", config.api_host, config.api_port)
            server.run()  # returns on SIGINT/SIGTERM (uvicorn handles them)
        else:
            import signal
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        thread.join(timeout=60)
        if server is not None:
            pool.close()
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
