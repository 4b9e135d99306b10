"""The tracker as one object: the consumer thread and, optionally, the API server thread. Used by
`python -m tracker` and by `make demo`, which runs it beside the producer and the trigger."""
from __future__ import annotations

import logging
import threading
import time

from .consumer import TrackerConsumer, TrackerStats
from .live import LivePicture
from .settings import TrackerConfig

logger = logging.getLogger(__name__)


def api_session(config: TrackerConfig):
    """The pool's `configure`: every API connection is autocommit (a read never leaves a transaction open)
    and gives up on a slow query or a lock wait instead of hanging behind the writer (answered with 503)."""
    def configure(conn) -> None:
        conn.execute(f"SET statement_timeout = {int(config.api_statement_timeout_s * 1000)}")
        conn.execute(f"SET lock_timeout = {int(config.api_lock_timeout_s * 1000)}")
    return configure


def api_pool(config: TrackerConfig, min_size: int = 1, max_size: int = 8, open: bool = False):
    """The API's connection pool on config.database, in the discipline of api_session."""
    from psycopg_pool import ConnectionPool

    return ConnectionPool(config.database, min_size=min_size, max_size=max_size, open=open,
                          kwargs={"application_name": "flight-tracker-api", "connect_timeout": 3, "autocommit": True},
                          configure=api_session(config))


class TrackerService:
    def __init__(self, config: TrackerConfig, serve_api: bool = True) -> None:
        self.config = config
        self.live = LivePicture(config.stale_after_s, config.max_aircraft)
        self.stats = TrackerStats()
        self.consumer = TrackerConsumer(config, self.live, self.stats)
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._consumer_thread = threading.Thread(target=self._consume, name="tracker-consumer", daemon=True)
        self._server = self._server_thread = self._pool = None
        if serve_api:
            self._build_api()

    @property
    def url(self) -> str:
        """The API's address; with TRACKER_API_PORT=0 the port the system chose."""
        port = self.config.api_port
        if self._server is not None and self._server.started and self._server.servers:
            port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.config.api_host}:{port}/"

    def _build_api(self) -> None:
        import uvicorn

        from .alerts_feed import AlertFeed
        from .api.app import create_app
        from .api.deps import AppState
        from .flight_view import FlightJsonCache
        from .geofences import TrackerGeofences

        self._pool = api_pool(self.config)
        self.alerts = AlertFeed(self.config.alerts)
        app = create_app(AppState(self.config, self.live, self.stats, self._pool, self.kafka_problem,
                                  FlightJsonCache(), self.alerts, TrackerGeofences(self.config.alerts)))
        self._server = uvicorn.Server(uvicorn.Config(app, host=self.config.api_host, port=self.config.api_port,
                                                     log_config=None, access_log=False, ws="websockets-sansio"))
        self._server_thread = threading.Thread(target=self._server.run, name="tracker-api", daemon=True)

    def kafka_problem(self) -> str | None:
        if self.stats.kafka_error:
            return self.stats.kafka_error
        # While the database is down the consumer waits for the writer instead of polling: not Kafka's fault.
        if time.time() - self.stats.last_poll > 30 and not self.stats.database_error:
            return "the consumer has not polled Kafka for more than 30 s"
        return None

    def _consume(self) -> None:
        try:
            self.consumer.run(self._stop)
        except BaseException as exc:  # noqa: BLE001 - reported by whoever waits on the service
            self.failure = exc
            logger.error("tracker consumer stopped: %s", exc, exc_info=not isinstance(exc, RuntimeError))
        finally:
            self._stop.set()

    def start(self, api_timeout_s: float = 30) -> None:
        self._consumer_thread.start()
        if self._server is not None:
            self._pool.open(wait=False)
            self.alerts.start()
            self._server_thread.start()
            deadline = time.monotonic() + api_timeout_s
            while not self._server.started and self._server_thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self._server.started:
                self.stop()
                raise RuntimeError(f"the tracker API did not start on {self.config.api_host}:{self.config.api_port} "
                                   "(port in use? set TRACKER_API_PORT)")
            logger.info("tracker API and map on %s (OpenAPI: %sdocs)", self.url, self.url)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the consumer stops (or `timeout`); True when it has stopped."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._consumer_thread.is_alive():
            self._consumer_thread.join(timeout=60)
        if self._server is not None:
            self.alerts.stop()
            self._server.should_exit = True
            if self._server_thread.is_alive():
                self._server_thread.join(timeout=15)
            self._pool.close()
