"""The event source mapping's parameters (AWS names, TRIGGER_* variables), read once at start-up.

Defaults follow AWS's Kafka event source mapping where AWS has one; where this project needs a
different default it says so next to the field.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Mapping

from pipeline_common.kafka_client import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, KafkaSettings
from pipeline_common.settings import ConfigError, env_bool, env_float, env_int, env_str

STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
EVENT_SOURCES = ("SelfManagedKafka", "aws:kafka")
MODES = ("batch", "per-message")

# AWS: BatchSize 1..10,000, default 100 for Kafka; batching window 0..300 s, default 500 ms
# for MSK and self-managed Kafka; the synchronous invoke payload limit is 6 MB.
MAX_BATCH_SIZE = 10_000
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# AWS: "When you configure both infinite retries and an on-failure destination, Lambda
# automatically applies a maximum of 10 retry attempts."
RETRIES_WITH_DESTINATION = 10
# Writing "none" for KAFKA_DLQ_TOPIC turns the Kafka on-failure destination off.
DISABLED = ("none", "off", "-")


@dataclass(frozen=True)
class TriggerConfig:
    topic: str = DEFAULT_TOPIC
    # Topics (AWS: a list, one topic per Kafka mapping today); None = (topic,). topic is then topics[0].
    topics: tuple[str, ...] | None = None
    # FilterCriteria as AWS takes it ({"Filters": [{"Pattern": "..."}]}), as JSON text or a dict.
    filter_criteria: str | dict | None = None
    # DestinationConfig.OnFailure.Destination: kafka://<topic>, or an SQS queue / SNS topic / S3 bucket ARN.
    on_failure_destination: str | None = None
    # A name for logs and metrics; the mapping's UUID (S3 keys, CloudWatch dimension) derives from it.
    name: str | None = None
    group_id: str = "flight-trigger"
    starting_position: str = "TRIM_HORIZON"  # AWS has no default; this one never skips a record
    starting_position_timestamp: float | None = None  # Unix seconds, for AT_TIMESTAMP
    batch_size: int = 100
    maximum_batching_window_s: float = 0.5
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    function_name: str = "flight-processor"
    qualifier: str | None = None
    concurrency: int = 6  # partitions invoked in parallel (aviation-data has 6 partitions)
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    bisect_batch_on_function_error: bool = False
    # AWS's default is off; on here because the project's Lambda reports batchItemFailures
    # (with failureReasons) for records it could not parse or publish.
    report_batch_item_failures: bool = True
    event_source: str = "SelfManagedKafka"
    event_source_arn: str | None = None
    mode: str = "batch"
    dlq_topic: str | None = DEFAULT_DLQ_TOPIC
    dlq_sqs_url: str | None = None
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    invoke_read_timeout_s: float | None = None  # None: function timeout + 30 s, asked of Lambda
    invoke_connect_timeout_s: float = 5.0
    status_interval_s: float = 5.0
    shutdown_timeout_s: float = 30.0
    # None = check CRCs when the crc32c C extension is installed; kafka-python's pure-Python CRC32C
    # caps consumption near 10k records/s on its own.
    check_crcs: bool | None = None
    max_partition_fetch_bytes: int = 2 * 1024 * 1024
    fetch_max_bytes: int = 16 * 1024 * 1024
    max_poll_records: int = 2000
    # Kafka's defaults. A trigger killed outright keeps its partitions until its session times out;
    # a static member (group.instance.id, one per trigger process, stable across restarts) takes them
    # back at once when it restarts. A static member does not leave the group on shutdown either.
    session_timeout_s: float = 45.0
    group_instance_id: str | None = None
    connect_timeout_s: float = 120.0  # keep retrying an unreachable broker at start (as the producer does)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def __post_init__(self) -> None:
        def bad(var: str, why: str) -> ConfigError:
            return ConfigError(f"{var}: {why}")

        if self.topics is None:
            object.__setattr__(self, "topics", (self.topic,))
        else:
            if not self.topics or not all(isinstance(t, str) and t for t in self.topics):
                raise bad("Topics", f"{self.topics!r} must name at least one topic")
            object.__setattr__(self, "topics", tuple(self.topics))
            object.__setattr__(self, "topic", self.topics[0])
        if self.filter_criteria is not None:
            from .event_filter import FilterError, RecordFilter
            try:
                RecordFilter.from_criteria(self.filter_criteria)
            except FilterError as exc:
                raise bad("TRIGGER_FILTER_CRITERIA", str(exc)) from None
        if self.on_failure_destination is not None:
            from .on_failure import destination_from_uri
            try:
                destination_from_uri(self.on_failure_destination, self)
            except ValueError as exc:
                raise bad("TRIGGER_ON_FAILURE_DESTINATION", str(exc)) from None

        if self.starting_position not in STARTING_POSITIONS:
            raise bad("TRIGGER_STARTING_POSITION",
                      f"{self.starting_position!r} is not one of {', '.join(STARTING_POSITIONS)}")
        if self.starting_position == "AT_TIMESTAMP" and self.starting_position_timestamp is None:
            raise bad("TRIGGER_STARTING_POSITION_TIMESTAMP", "is required with AT_TIMESTAMP")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise bad("TRIGGER_BATCH_SIZE", f"{self.batch_size} is outside 1..{MAX_BATCH_SIZE}")
        if not 0 <= self.maximum_batching_window_s <= 300:
            raise bad("TRIGGER_MAXIMUM_BATCHING_WINDOW_S", f"{self.maximum_batching_window_s} is outside 0..300")
        if not 1024 <= self.max_payload_bytes <= MAX_PAYLOAD_BYTES:
            raise bad("TRIGGER_MAX_PAYLOAD_BYTES", f"{self.max_payload_bytes} is outside 1024..{MAX_PAYLOAD_BYTES}")
        if not 1 <= self.concurrency <= 1000:
            raise bad("TRIGGER_CONCURRENCY", f"{self.concurrency} is outside 1..1000")
        if not -1 <= self.maximum_retry_attempts <= 10_000:
            raise bad("TRIGGER_MAXIMUM_RETRY_ATTEMPTS", f"{self.maximum_retry_attempts} is outside -1..10000")
        if self.maximum_record_age_s != -1 and not 60 <= self.maximum_record_age_s <= 604_800:
            raise bad("TRIGGER_MAXIMUM_RECORD_AGE_S", f"{self.maximum_record_age_s} is not -1 or 60..604800")
        if self.event_source not in EVENT_SOURCES:
            raise bad("TRIGGER_EVENT_SOURCE", f"{self.event_source!r} is not one of {', '.join(EVENT_SOURCES)}")
        if self.event_source == "aws:kafka" and not self.event_source_arn:
            raise bad("TRIGGER_EVENT_SOURCE_ARN", "is required with TRIGGER_EVENT_SOURCE=aws:kafka (the MSK cluster ARN)")
        if self.mode not in MODES:
            raise bad("TRIGGER_MODE", f"{self.mode!r} is not one of {', '.join(MODES)}")
        if self.dlq_topic in self.topics:
            # AWS blocks this too: a failed record would loop back into its own source.
            raise bad("KAFKA_DLQ_TOPIC", "must differ from KAFKA_TOPIC")
        if not 0 < self.retry_base_delay_s <= self.retry_max_delay_s:
            raise bad("TRIGGER_RETRY_BASE_DELAY_S", "must be > 0 and <= TRIGGER_RETRY_MAX_DELAY_S")
        if self.invoke_read_timeout_s is not None and self.invoke_read_timeout_s <= 0:
            raise bad("TRIGGER_INVOKE_READ_TIMEOUT_S", "must be > 0")
        if self.status_interval_s <= 0:
            raise bad("TRIGGER_STATUS_INTERVAL_S", "must be > 0")
        if not 6 <= self.session_timeout_s <= 1800:
            # The broker's group.min/max.session.timeout.ms defaults.
            raise bad("TRIGGER_SESSION_TIMEOUT_S", f"{self.session_timeout_s} is outside 6..1800")
        if self.connect_timeout_s < 0:
            raise bad("TRIGGER_CONNECT_TIMEOUT_S", "must be >= 0")

    @property
    def effective_retry_attempts(self) -> int:
        """MaximumRetryAttempts as AWS applies it: -1 means 10 once an on-failure destination exists."""
        if self.maximum_retry_attempts == -1 and (self.dlq_topic or self.dlq_sqs_url or self.on_failure_destination):
            return RETRIES_WITH_DESTINATION
        return self.maximum_retry_attempts

    @property
    def mapping_uuid(self) -> str:
        """Stable per mapping (group and function), like the UUID AWS gives an event source mapping."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flightpipe-esm:{self.group_id}:{self.function_name}"))

    @property
    def label(self) -> str:
        return self.name or self.group_id

    @property
    def per_message(self) -> bool:
        return self.mode == "per-message"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "TriggerConfig":
        """Every field from TRIGGER_* (and KAFKA_*) variables; keyword arguments that are not None win."""
        dlq = env_str("KAFKA_DLQ_TOPIC", DEFAULT_DLQ_TOPIC, env=env)
        window = env_float("TRIGGER_MAXIMUM_BATCHING_WINDOW_S", 0.5, env=env, minimum=0, maximum=300)
        read_timeout = env_str("TRIGGER_INVOKE_READ_TIMEOUT_S", None, env=env)
        ts = env_str("TRIGGER_STARTING_POSITION_TIMESTAMP", None, env=env)
        values = dict(
            topic=env_str("KAFKA_TOPIC", DEFAULT_TOPIC, env=env),
            filter_criteria=env_str("TRIGGER_FILTER_CRITERIA", None, env=env),
            on_failure_destination=env_str("TRIGGER_ON_FAILURE_DESTINATION", None, env=env),
            group_id=env_str("TRIGGER_GROUP_ID", "flight-trigger", env=env),
            starting_position=env_str("TRIGGER_STARTING_POSITION", "TRIM_HORIZON", env=env).upper(),
            starting_position_timestamp=_float("TRIGGER_STARTING_POSITION_TIMESTAMP", ts),
            batch_size=env_int("TRIGGER_BATCH_SIZE", 100, env=env),
            maximum_batching_window_s=window,
            max_payload_bytes=env_int("TRIGGER_MAX_PAYLOAD_BYTES", MAX_PAYLOAD_BYTES, env=env),
            function_name=env_str("TRIGGER_FUNCTION_NAME", None, env=env)
            or env_str("FUNCTION_NAME", "flight-processor", env=env),
            qualifier=env_str("TRIGGER_QUALIFIER", None, env=env),
            concurrency=env_int("TRIGGER_CONCURRENCY", 6, env=env),
            maximum_retry_attempts=env_int("TRIGGER_MAXIMUM_RETRY_ATTEMPTS", -1, env=env),
            maximum_record_age_s=env_int("TRIGGER_MAXIMUM_RECORD_AGE_S", -1, env=env),
            bisect_batch_on_function_error=env_bool("TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR", False, env=env),
            report_batch_item_failures=env_bool("TRIGGER_REPORT_BATCH_ITEM_FAILURES", True, env=env),
            event_source_arn=env_str("TRIGGER_EVENT_SOURCE_ARN", None, env=env),
            event_source=env_str("TRIGGER_EVENT_SOURCE", None, env=env),
            mode=env_str("TRIGGER_MODE", "batch", env=env).lower(),
            dlq_topic=None if dlq.lower() in DISABLED else dlq,
            dlq_sqs_url=env_str("TRIGGER_DLQ_SQS_URL", None, env=env),
            retry_base_delay_s=env_float("TRIGGER_RETRY_BASE_DELAY_S", 0.5, env=env),
            retry_max_delay_s=env_float("TRIGGER_RETRY_MAX_DELAY_S", 30.0, env=env),
            invoke_read_timeout_s=_float("TRIGGER_INVOKE_READ_TIMEOUT_S", read_timeout),
            status_interval_s=env_float("TRIGGER_STATUS_INTERVAL_S", 5.0, env=env),
            shutdown_timeout_s=env_float("TRIGGER_SHUTDOWN_TIMEOUT_S", 30.0, env=env, minimum=0),
            check_crcs=_optional_bool("TRIGGER_CHECK_CRCS", env),
            max_partition_fetch_bytes=env_int("TRIGGER_MAX_PARTITION_FETCH_BYTES", 2 * 1024 * 1024,
                                              env=env, minimum=64 * 1024),
            fetch_max_bytes=env_int("TRIGGER_FETCH_MAX_BYTES", 16 * 1024 * 1024, env=env, minimum=64 * 1024),
            max_poll_records=env_int("TRIGGER_MAX_POLL_RECORDS", 2000, env=env, minimum=1),
            session_timeout_s=env_float("TRIGGER_SESSION_TIMEOUT_S", 45.0, env=env),
            group_instance_id=env_str("TRIGGER_GROUP_INSTANCE_ID", None, env=env),
            connect_timeout_s=env_float("TRIGGER_CONNECT_TIMEOUT_S", 120.0, env=env, minimum=0),
        )
        values.update({k: v for k, v in overrides.items() if v is not None and k != "kafka"})
        if isinstance(values.get("dlq_topic"), str) and values["dlq_topic"].lower() in DISABLED:
            values["dlq_topic"] = None
        if values["event_source"] is None:
            # An MSK cluster ARN implies the MSK event shape, as on AWS.
            values["event_source"] = "aws:kafka" if values["event_source_arn"] else "SelfManagedKafka"
        kafka = overrides.get("kafka") or KafkaSettings.from_env(env)
        return cls(kafka=kafka, **values)


def _optional_bool(name: str, env: Mapping[str, str] | None) -> bool | None:
    raw = env_str(name, None, env=env)
    return None if raw is None or raw.lower() == "auto" else env_bool(name, False, env=env)


def _float(name: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None

