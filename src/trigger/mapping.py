"""The event source mapping's parameters (AWS names, TRIGGER_* variables), read once at start-up.

Defaults follow AWS's Kafka event source mapping where AWS has one; where this project needs a
different default it says so next to the field.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import ClassVar

from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.settings import ConfigError, Setting, Settings, parse_bool, setting
from pipeline_common.shared_settings import KAFKA_DLQ_TOPIC, KAFKA_TOPIC

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


def _bool_or_auto(text: str) -> bool | None:
    return None if text.lower() == "auto" else parse_bool(text)


# Also read on its own by `python -m trigger.lag`.
TRIGGER_MAPPINGS = Setting(
    "TRIGGER_MAPPINGS", None, metavar="FILE",
    help="run every `AWS::Lambda::EventSourceMapping` of this CloudFormation template, or every mapping of "
         "a JSON/YAML file of CreateEventSourceMapping properties, each in its own group")


@dataclass(frozen=True)
class TriggerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "TRIGGER_"
    USED_BY: ClassVar[str] = "trigger"

    topic: str = KAFKA_TOPIC.field()
    # Topics (AWS: a list; one topic per Kafka mapping today); None = (topic,). topic is then topics[0].
    topics: tuple[str, ...] | None = None
    # A name for logs; the mapping's UUID (S3 keys, CloudWatch dimension) derives from group and function.
    name: str | None = None
    # FilterCriteria as AWS takes it: {"Filters": [{"Pattern": "<json>"}]}, as JSON text.
    filter_criteria: str | None = setting(
        "TRIGGER_FILTER_CRITERIA", None, metavar="JSON",
        help="`FilterCriteria` on the record value, e.g. "
             "'{\"Filters\": [{\"Pattern\": \"{\\\"value\\\": {\\\"on_ground\\\": [false]}}\"}]}'")
    on_failure_destination: str | None = setting(
        "TRIGGER_ON_FAILURE_DESTINATION", None, metavar="URI",
        help="`DestinationConfig.OnFailure.Destination`: kafka://<topic>, or an SQS queue, SNS topic or "
             "S3 bucket ARN")
    mappings: str | None = TRIGGER_MAPPINGS.field()
    metrics: bool = setting("TRIGGER_METRICS", True,
                            help="put AWS's event source mapping metrics to CloudWatch on AWS_ENDPOINT_URL")
    metrics_namespace: str = setting("TRIGGER_METRICS_NAMESPACE", "AWS/Lambda", help="CloudWatch namespace")
    metrics_interval_s: float = setting("TRIGGER_METRICS_INTERVAL_S", 60.0, minimum=1, unit="s",
                                        help="how often the metrics are put")
    group_id: str = setting("TRIGGER_GROUP_ID", "flight-trigger", help="consumer group id")
    # AWS has no default; TRIM_HORIZON never skips a record.
    starting_position: str = setting("TRIGGER_STARTING_POSITION", "TRIM_HORIZON", choices=STARTING_POSITIONS,
                                     parse=str.upper, help="where a NEW group starts; a known group resumes "
                                                           "from its committed offsets")
    starting_position_timestamp: float | None = setting("TRIGGER_STARTING_POSITION_TIMESTAMP", None,
                                                        metavar="UNIX_S", help="for AT_TIMESTAMP (Unix seconds)")
    # AWS's default is 100. 1,000 carries a partition's share of a whole fleet snapshot (the default
    # producer's 5,000 aircraft over 6 partitions) in one invocation, and the planet's 10,000 in two: each
    # invocation costs MiniStack CPU, a log stream and datapoints, see docs/OPERATIONS.md "What grows".
    batch_size: int = setting("TRIGGER_BATCH_SIZE", 1000, minimum=1, maximum=MAX_BATCH_SIZE,
                              metavar=f"1..{MAX_BATCH_SIZE}", help="`BatchSize`")
    maximum_batching_window_s: float = setting("TRIGGER_MAXIMUM_BATCHING_WINDOW_S", 0.5, minimum=0, maximum=300,
                                               metavar="S", help="`MaximumBatchingWindowInSeconds`")
    max_payload_bytes: int = setting("TRIGGER_MAX_PAYLOAD_BYTES", MAX_PAYLOAD_BYTES, minimum=1024,
                                     maximum=MAX_PAYLOAD_BYTES, doc_default="6 MB (6291456)",
                                     help="invoke payload limit")
    function_name: str = setting("TRIGGER_FUNCTION_NAME", "flight-processor", fallback_env=("FUNCTION_NAME",),
                                 help="function name or ARN")
    qualifier: str | None = setting("TRIGGER_QUALIFIER", None, help="version or alias")
    concurrency: int = setting("TRIGGER_CONCURRENCY", 6, minimum=1, maximum=1000,
                               help="partitions invoked in parallel (aviation-data has 6)")
    maximum_retry_attempts: int = setting(
        "TRIGGER_MAXIMUM_RETRY_ATTEMPTS", -1, minimum=-1, maximum=10_000, metavar="-1..10000",
        doc_default="`-1` (infinite; capped at 10 with a destination, as AWS does)", help="`MaximumRetryAttempts`")
    maximum_record_age_s: int = setting("TRIGGER_MAXIMUM_RECORD_AGE_S", -1, metavar="S",
                                        help="`MaximumRecordAgeInSeconds`, -1 or 60..604800")
    bisect_batch_on_function_error: bool = setting("TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR", False,
                                                   help="`BisectBatchOnFunctionError`")
    # AWS's default is off; on here because the project's Lambda reports batchItemFailures
    # (with failureReasons) for records it could not parse or publish.
    report_batch_item_failures: bool = setting("TRIGGER_REPORT_BATCH_ITEM_FAILURES", True,
                                               help="`FunctionResponseTypes=ReportBatchItemFailures`")
    # None: aws:kafka when an MSK cluster ARN is given (as on AWS), else SelfManagedKafka.
    event_source: str | None = setting("TRIGGER_EVENT_SOURCE", None, choices=EVENT_SOURCES,
                                       doc_default="`SelfManagedKafka` (`aws:kafka` with an ARN)",
                                       help="eventSource of the events")
    event_source_arn: str | None = setting("TRIGGER_EVENT_SOURCE_ARN", None,
                                           help="MSK cluster ARN for `aws:kafka` events")
    mode: str = setting("TRIGGER_MODE", "batch", choices=MODES, parse=str.lower,
                        help="`batch` (ESM) or `per-message` (the seed's one invoke per raw message)")
    dlq_topic: str | None = KAFKA_DLQ_TOPIC.field()
    dlq_sqs_url: str | None = setting("TRIGGER_DLQ_SQS_URL", None, help="also send failures to this SQS queue")
    retry_base_delay_s: float = setting("TRIGGER_RETRY_BASE_DELAY_S", 0.5, greater_than=0, unit="s",
                                        help="first retry delay of a failed invoke (doubles)")
    retry_max_delay_s: float = setting("TRIGGER_RETRY_MAX_DELAY_S", 30.0, greater_than=0, unit="s",
                                       help="longest retry delay")
    invoke_read_timeout_s: float | None = setting("TRIGGER_INVOKE_READ_TIMEOUT_S", None, greater_than=0,
                                                  doc_default="function timeout + 30 s",
                                                  help="invoke HTTP read timeout")
    invoke_connect_timeout_s: float = 5.0
    status_interval_s: float = setting("TRIGGER_STATUS_INTERVAL_S", 5.0, greater_than=0, unit="s",
                                       help="status line period")
    shutdown_timeout_s: float = setting("TRIGGER_SHUTDOWN_TIMEOUT_S", 30.0, minimum=0, unit="s",
                                        help="how long SIGTERM waits for batches in flight")
    # None = check CRCs when the crc32c C extension is installed; kafka-python's pure-Python CRC32C
    # caps consumption near 10k records/s on its own.
    check_crcs: bool | None = setting("TRIGGER_CHECK_CRCS", None, parse=_bool_or_auto, metavar="BOOL|auto",
                                      doc_default="`auto`: on when the `crc32c` C extension is installed "
                                                  "(it is a dependency)",
                                      help="CRC check of fetched batches")
    max_partition_fetch_bytes: int = setting("TRIGGER_MAX_PARTITION_FETCH_BYTES", 2 * 1024 * 1024,
                                             minimum=64 * 1024, doc_default="2 MiB (2097152)",
                                             help="consumer `max.partition.fetch.bytes`")
    fetch_max_bytes: int = setting("TRIGGER_FETCH_MAX_BYTES", 16 * 1024 * 1024, minimum=64 * 1024,
                                   doc_default="16 MiB (16777216)", help="consumer `fetch.max.bytes`")
    max_poll_records: int = setting("TRIGGER_MAX_POLL_RECORDS", 2000, minimum=1,
                                    help="consumer `max.poll.records`")
    # Kafka's defaults. A trigger killed outright keeps its partitions until its session times out;
    # a static member (group.instance.id, one per trigger process, stable across restarts) takes them
    # back at once when it restarts. A static member does not leave the group on shutdown either.
    # 6..1800: the broker's group.min/max.session.timeout.ms defaults.
    session_timeout_s: float = setting("TRIGGER_SESSION_TIMEOUT_S", 45.0, minimum=6, maximum=1800, unit="s",
                                       help="consumer group session timeout")
    group_instance_id: str | None = setting(
        "TRIGGER_GROUP_INSTANCE_ID", None,
        help="static membership: a restarted trigger takes its partitions back at once "
             "(unique per process; it does not leave the group on shutdown)")
    connect_timeout_s: float = setting("TRIGGER_CONNECT_TIMEOUT_S", 120.0, minimum=0, unit="s",
                                       help="keep retrying an unreachable broker at start, then exit 1")
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def check(self) -> None:
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
        if isinstance(self.dlq_topic, str) and self.dlq_topic.lower() in DISABLED:
            object.__setattr__(self, "dlq_topic", None)
        if self.event_source is None:
            # An MSK cluster ARN implies the MSK event shape, as on AWS.
            object.__setattr__(self, "event_source", "aws:kafka" if self.event_source_arn else "SelfManagedKafka")
        if self.starting_position == "AT_TIMESTAMP" and self.starting_position_timestamp is None:
            raise bad("TRIGGER_STARTING_POSITION_TIMESTAMP", "is required with AT_TIMESTAMP")
        if self.maximum_record_age_s != -1 and not 60 <= self.maximum_record_age_s <= 604_800:
            raise bad("TRIGGER_MAXIMUM_RECORD_AGE_S", f"{self.maximum_record_age_s} is not -1 or 60..604800")
        if self.event_source == "aws:kafka" and not self.event_source_arn:
            raise bad("TRIGGER_EVENT_SOURCE_ARN", "is required with TRIGGER_EVENT_SOURCE=aws:kafka (the MSK cluster ARN)")
        if self.dlq_topic in self.topics:
            # AWS blocks this too: a failed record would loop back into its own source.
            raise bad("KAFKA_DLQ_TOPIC", "must differ from KAFKA_TOPIC")
        if self.retry_base_delay_s > self.retry_max_delay_s:
            raise bad("TRIGGER_RETRY_BASE_DELAY_S", "must be <= TRIGGER_RETRY_MAX_DELAY_S")

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
