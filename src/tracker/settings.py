"""The tracker's settings (TRACKER_*, DATABASE_URL, POSTGRES_PORT, the shared KAFKA_*), each declared once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.settings import ConfigError, Setting, Settings, setting
from pipeline_common.shared_settings import KAFKA_TOPIC

from .alerts_settings import TrackerAlertsSettings

STARTING_POSITIONS = ("earliest", "latest")

# Read by the tracker and by `make run` (infra/stack/postgres.py), declared here once.
POSTGRES_PORT = Setting("POSTGRES_PORT", 5432, minimum=1, maximum=65535, flag=None,
                        help="port of the native PostgreSQL `make run` starts on 127.0.0.1")
DATABASE_URL = Setting("DATABASE_URL", None, flag="--database-url", metavar="URL",
                       doc_default="the native server: `postgresql://flightpipe@127.0.0.1:$POSTGRES_PORT/flightpipe`",
                       help="PostgreSQL the tracker writes to; when set, `make run` starts no PostgreSQL")


def native_database_url(port: int) -> str:
    """The URL of the stack's own PostgreSQL (infra/stack/postgres.py starts it on 127.0.0.1:POSTGRES_PORT)."""
    return f"postgresql://flightpipe@127.0.0.1:{port}/flightpipe"


@dataclass(frozen=True)
class TrackerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "TRACKER_"
    USED_BY: ClassVar[str] = "tracker"

    database_url: str | None = DATABASE_URL.field()
    postgres_port: int = POSTGRES_PORT.field()
    topic: str = KAFKA_TOPIC.field()
    group_id: str = setting("TRACKER_GROUP_ID", "flight-tracker", help="the tracker's consumer group")
    starting_position: str = setting("TRACKER_STARTING_POSITION", "earliest", choices=STARTING_POSITIONS,
                                     help="where a new consumer group starts reading the topic")
    api_host: str = setting("TRACKER_API_HOST", "127.0.0.1", help="address the API and map listen on")
    api_port: int = setting("TRACKER_API_PORT", 8000, minimum=0, maximum=65535, help="port of the API and map")
    batch_size: int = setting("TRACKER_BATCH_SIZE", 5000, minimum=1, maximum=100_000,
                              help="positions per database transaction and offset commit, at most")
    batch_linger_s: float = setting("TRACKER_BATCH_LINGER_S", 0.5, minimum=0, maximum=60, unit="s",
                                    help="how long a partial batch waits for more records")
    stale_after_s: float = setting("TRACKER_STALE_AFTER_S", 300.0, minimum=1, unit="s",
                                   help="an aircraft not heard for this long leaves the live picture")
    max_aircraft: int = setting("TRACKER_MAX_AIRCRAFT", 100_000, minimum=1, maximum=10_000_000,
                                help="most aircraft the live picture holds (the least recently heard go first)")
    retention_days: int = setting("TRACKER_RETENTION_DAYS", 7, minimum=0, maximum=36_500,
                                  help="day partitions older than this are dropped (0 keeps everything)")
    partitions_ahead_days: int = setting("TRACKER_PARTITIONS_AHEAD_DAYS", 2, minimum=0, maximum=60,
                                         help="day partitions created ahead of time")
    maintenance_interval_s: float = setting("TRACKER_MAINTENANCE_INTERVAL_S", 3600.0, minimum=0.1, maximum=86_400,
                                            unit="s", help="how often the maintenance pass runs (partitions past "
                                            "retention dropped, the coming days' created)")
    api_statement_timeout_s: float = setting("TRACKER_API_STATEMENT_TIMEOUT_S", 5.0, minimum=0.1, maximum=600,
                                             unit="s", help="an API query running longer is cancelled and answered "
                                             "with 503")
    api_lock_timeout_s: float = setting("TRACKER_API_LOCK_TIMEOUT_S", 1.0, minimum=0.1, maximum=600, unit="s",
                                        help="an API query waiting longer for a lock (e.g. behind the writer's "
                                        "DDL) is cancelled and answered with 503")
    ws_interval_s: float = setting("TRACKER_WS_INTERVAL_S", 1.0, minimum=1.0, maximum=60, unit="s",
                                   help="the WebSocket sends changes at most this often")
    db_retry_max_s: float = setting("TRACKER_DB_RETRY_MAX_S", 30.0, minimum=0.1, unit="s",
                                    help="longest wait between two tries of a failed database write")
    connect_timeout_s: float = setting("TRACKER_CONNECT_TIMEOUT_S", 120.0, minimum=0, unit="s",
                                       help="how long to keep retrying an unreachable broker at start")
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    alerts: TrackerAlertsSettings = field(default_factory=TrackerAlertsSettings)

    def check(self) -> None:
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"DATABASE_URL={self.database_url!r} is not a postgresql:// URL")

    @property
    def database(self) -> str:
        """DATABASE_URL, else the native server's URL on POSTGRES_PORT."""
        return self.database_url or native_database_url(self.postgres_port)
