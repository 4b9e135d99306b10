"""The tracker's settings (TRACKER_* variables, DATABASE_URL, the shared KAFKA_*), read once at start-up."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from pipeline_common.kafka_client import DEFAULT_TOPIC, KafkaSettings
from pipeline_common.settings import ConfigError, env_float, env_int, env_str

STARTING_POSITIONS = ("earliest", "latest")


def native_database_url(port: int) -> str:
    """The URL of the stack's own PostgreSQL (infra/postgres.py starts it on 127.0.0.1:POSTGRES_PORT)."""
    return f"postgresql://flightpipe@127.0.0.1:{port}/flightpipe"


@dataclass(frozen=True)
class TrackerConfig:
    database_url: str = native_database_url(5432)
    topic: str = DEFAULT_TOPIC
    group_id: str = "flight-tracker"
    # A new group reads the topic from the start: the history should hold everything Kafka still has.
    starting_position: str = "earliest"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    batch_size: int = 5000             # positions per database transaction (and offset commit), at most
    batch_linger_s: float = 0.5        # how long a partial batch may wait for more records
    stale_after_s: float = 300.0       # an aircraft not heard for this long leaves the live picture
    max_aircraft: int = 100_000        # bound on the live picture (the whole planet is ~15,000 at once)
    retention_days: int = 7            # day partitions older than this are dropped (0 keeps everything)
    partitions_ahead_days: int = 2     # day partitions created ahead of time
    ws_interval_s: float = 1.0         # WebSocket updates at most this often
    db_retry_max_s: float = 30.0       # the longest wait between two tries of a failed database write
    connect_timeout_s: float = 120.0   # keep retrying an unreachable broker at start
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def __post_init__(self) -> None:
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"DATABASE_URL={self.database_url!r} is not a postgresql:// URL")
        if self.starting_position not in STARTING_POSITIONS:
            raise ConfigError(f"TRACKER_STARTING_POSITION={self.starting_position!r} is not one of "
                              f"{', '.join(STARTING_POSITIONS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "TrackerConfig":
        """Values passed in ``overrides`` win over the environment."""
        port = env_int("POSTGRES_PORT", 5432, env=env, minimum=1, maximum=65535)
        values = dict(
            database_url=env_str("DATABASE_URL", native_database_url(port), env=env),
            topic=env_str("KAFKA_TOPIC", DEFAULT_TOPIC, env=env),
            group_id=env_str("TRACKER_GROUP_ID", "flight-tracker", env=env),
            starting_position=env_str("TRACKER_STARTING_POSITION", "earliest", env=env,
                                      choices=STARTING_POSITIONS),
            api_host=env_str("TRACKER_API_HOST", "127.0.0.1", env=env),
            api_port=env_int("TRACKER_API_PORT", 8000, env=env, minimum=0, maximum=65535),
            batch_size=env_int("TRACKER_BATCH_SIZE", 5000, env=env, minimum=1, maximum=100_000),
            batch_linger_s=env_float("TRACKER_BATCH_LINGER_S", 0.5, env=env, minimum=0, maximum=60),
            stale_after_s=env_float("TRACKER_STALE_AFTER_S", 300.0, env=env, minimum=1),
            max_aircraft=env_int("TRACKER_MAX_AIRCRAFT", 100_000, env=env, minimum=1, maximum=10_000_000),
            retention_days=env_int("TRACKER_RETENTION_DAYS", 7, env=env, minimum=0, maximum=36_500),
            partitions_ahead_days=env_int("TRACKER_PARTITIONS_AHEAD_DAYS", 2, env=env, minimum=0, maximum=60),
            ws_interval_s=env_float("TRACKER_WS_INTERVAL_S", 1.0, env=env, minimum=1.0, maximum=60),
            db_retry_max_s=env_float("TRACKER_DB_RETRY_MAX_S", 30.0, env=env, minimum=0.1),
            connect_timeout_s=env_float("TRACKER_CONNECT_TIMEOUT_S", 120.0, env=env, minimum=0),
        )
        kafka_overrides = overrides.pop("kafka_overrides", {})
        values["kafka"] = KafkaSettings.from_env(env=env, **kafka_overrides)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
