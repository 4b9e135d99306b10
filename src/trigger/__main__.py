"""`python -m trigger`: run Kafka -> Lambda event source mappings until SIGINT/SIGTERM.

One mapping from flags and TRIGGER_* (or KAFKA_*) variables named after AWS's parameters (a flag
wins over the variable), or every mapping declared in a CloudFormation template or mappings file
(`--mappings infra/aws/template.yaml`, TRIGGER_MAPPINGS): each runs with its own consumer group in
its own thread of this process. First SIGINT/SIGTERM: finish the batches in flight, commit, leave the group.
A second one: stop retrying now (unfinished batches stay uncommitted and are re-delivered).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading

from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError, env_bool

from .declarations import load_mappings
from .mapping import EVENT_SOURCES, MAX_BATCH_SIZE, MODES, STARTING_POSITIONS, TriggerConfig
from .metrics import CloudWatchPublisher
from .runner import BrokerUnavailable, Trigger

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc mallopt() parameters (malloc.h)


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trigger",
        description="Local equivalent of AWS Lambda's Kafka event source mapping: consumes a topic and invokes "
                    "a function with ESM-shaped batches, at least once, dead-lettering records that exhaust retries.",
        epilog="Tuning (variables only): TRIGGER_RETRY_BASE_DELAY_S (0.5), TRIGGER_RETRY_MAX_DELAY_S (30), "
               "TRIGGER_INVOKE_READ_TIMEOUT_S (function timeout + 30), TRIGGER_SHUTDOWN_TIMEOUT_S (30), "
               "TRIGGER_MAX_PAYLOAD_BYTES (6 MiB), TRIGGER_MAX_POLL_RECORDS (2000), "
               "TRIGGER_MAX_PARTITION_FETCH_BYTES, TRIGGER_FETCH_MAX_BYTES, TRIGGER_CHECK_CRCS (auto), "
               "TRIGGER_CONNECT_TIMEOUT_S (120), TRIGGER_SESSION_TIMEOUT_S (45), TRIGGER_GROUP_INSTANCE_ID "
               "(static membership: a restarted process takes its partitions back at once; unique per process). "
               "Kafka connection: KAFKA_BOOTSTRAP_SERVERS (default localhost:9092), KAFKA_SECURITY_PROTOCOL, "
               "KAFKA_SASL_*, KAFKA_SSL_*. AWS: AWS_ENDPOINT_URL, AWS_REGION/AWS_DEFAULT_REGION, credentials "
               "as usual. Logs: LOG_LEVEL, LOG_FORMAT=json|console. See src/trigger/README.md.")
    a = p.add_argument
    a("--topic", help="source topic [KAFKA_TOPIC, default aviation-data]")
    a("--group-id", help="consumer group id [TRIGGER_GROUP_ID, default flight-trigger]")
    a("--starting-position", choices=STARTING_POSITIONS, type=str.upper,
      help="where a NEW group starts; a known group resumes from its committed offsets "
           "[TRIGGER_STARTING_POSITION, default TRIM_HORIZON]")
    a("--starting-position-timestamp", type=float, metavar="UNIX_S",
      help="for AT_TIMESTAMP [TRIGGER_STARTING_POSITION_TIMESTAMP]")
    a("--batch-size", type=int, metavar=f"1..{MAX_BATCH_SIZE}", help="BatchSize [TRIGGER_BATCH_SIZE, default 100]")
    a("--maximum-batching-window-s", type=float, metavar="S",
      help="MaximumBatchingWindowInSeconds [TRIGGER_MAXIMUM_BATCHING_WINDOW_S, default 0.5]")
    a("--function-name", help="function name or ARN [TRIGGER_FUNCTION_NAME or FUNCTION_NAME, default flight-processor]")
    a("--qualifier", help="version or alias [TRIGGER_QUALIFIER]")
    a("--concurrency", type=int, help="partitions invoked in parallel [TRIGGER_CONCURRENCY, default 6]")
    a("--maximum-retry-attempts", type=int, metavar="-1..10000",
      help="MaximumRetryAttempts; -1 infinite, which AWS (and this trigger) caps at 10 when an on-failure "
           "destination is set [TRIGGER_MAXIMUM_RETRY_ATTEMPTS, default -1]")
    a("--maximum-record-age-s", type=int, metavar="S",
      help="MaximumRecordAgeInSeconds, -1 or 60..604800 [TRIGGER_MAXIMUM_RECORD_AGE_S, default -1]")
    a("--bisect-batch-on-function-error", type=_bool, metavar="BOOL",
      help="BisectBatchOnFunctionError [TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR, default false]")
    a("--report-batch-item-failures", type=_bool, metavar="BOOL",
      help="FunctionResponseTypes=ReportBatchItemFailures [TRIGGER_REPORT_BATCH_ITEM_FAILURES, default true]")
    a("--event-source", choices=EVENT_SOURCES,
      help="eventSource of the event [TRIGGER_EVENT_SOURCE, default SelfManagedKafka, or aws:kafka with an ARN]")
    a("--event-source-arn", help="MSK cluster ARN for aws:kafka events [TRIGGER_EVENT_SOURCE_ARN]")
    a("--mode", choices=MODES, help="batch (ESM) or per-message (the seed's one invoke per raw message) "
                                    "[TRIGGER_MODE, default batch]")
    a("--dlq-topic", help="on-failure Kafka topic, 'none' to disable [KAFKA_DLQ_TOPIC, default aviation-data-dlq]")
    a("--dlq-sqs-url", help="also send failures to this SQS queue [TRIGGER_DLQ_SQS_URL]")
    a("--status-interval-s", type=float, help="status line period [TRIGGER_STATUS_INTERVAL_S, default 5]")
    a("--filter-criteria", metavar="JSON",
      help='FilterCriteria, e.g. \'{"Filters": [{"Pattern": "{\\"value\\": {\\"on_ground\\": [false]}}"}]}\' '
           "[TRIGGER_FILTER_CRITERIA]")
    a("--on-failure-destination", metavar="URI",
      help="DestinationConfig.OnFailure.Destination: kafka://<topic>, or an SQS queue, SNS topic or S3 bucket ARN "
           "[TRIGGER_ON_FAILURE_DESTINATION]")
    a("--mappings", metavar="FILE",
      help="run every AWS::Lambda::EventSourceMapping of this CloudFormation template, or every mapping of a "
           "JSON/YAML file of CreateEventSourceMapping properties, each with its own group [TRIGGER_MAPPINGS]")
    a("--parameter", action="append", default=[], metavar="KEY=VALUE",
      help="a template parameter value (repeatable); the others keep their defaults")
    a("--metrics", type=_bool, metavar="BOOL",
      help="publish AWS's event source mapping metrics to CloudWatch on AWS_ENDPOINT_URL "
           "[TRIGGER_METRICS, default true]")
    a("--duration", type=float, metavar="S", help="stop after S seconds")
    a("--until-idle-s", type=float, metavar="S",
      help="stop once nothing new arrived for S seconds and everything is handled (drain and exit)")
    return p


_FIELDS = ("topic", "group_id", "starting_position", "starting_position_timestamp", "batch_size",
           "maximum_batching_window_s", "function_name", "qualifier", "concurrency", "maximum_retry_attempts",
           "maximum_record_age_s", "bisect_batch_on_function_error", "report_batch_item_failures", "event_source",
           "event_source_arn", "mode", "dlq_topic", "dlq_sqs_url", "status_interval_s", "filter_criteria",
           "on_failure_destination")


def _return_freed_memory_promptly() -> None:
    """glibc keeps the memory of big short-lived buffers (invoke payloads of up to 6 MB, fetch
    responses) in per-thread arenas and raises its mmap threshold after freeing each one, so the
    trigger's resident memory would stay near its worst moment. A fixed mmap threshold hands such
    buffers back to the OS when they are freed, and two arenas are enough for one consumer thread
    and a few invoke workers (-25 MB peak RSS with 10,000-record batches, no measurable CPU cost)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        logger.debug("not glibc: allocator left as it is")
        return
    libc.mallopt(_M_ARENA_MAX, 2)
    libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def _configs(args) -> list[TriggerConfig]:
    source = args.mappings or os.environ.get("TRIGGER_MAPPINGS", "").strip()
    if not source:
        return [TriggerConfig.from_env(**{name: getattr(args, name) for name in _FIELDS})]
    flagged = [name for name in _FIELDS if getattr(args, name) is not None]
    if flagged:
        raise ConfigError(f"--mappings declares the mappings; drop --{flagged[0].replace('_', '-')} "
                          "(use --parameter for template parameters)")
    parameters = {}
    for pair in args.parameter:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--parameter {pair!r} is not KEY=VALUE")
        parameters[key] = value
    return load_mappings(source, parameters)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    _return_freed_memory_promptly()
    try:
        configs = _configs(args)
        metrics_on = args.metrics if args.metrics is not None else env_bool("TRIGGER_METRICS", True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    triggers = [Trigger(config) for config in configs]
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            logger.warning("second %s: giving up on batches still retrying", signal.Signals(signum).name)
            for trigger in triggers:
                trigger.abort()
        else:
            logger.info("%s: finishing the batches in flight, then committing and leaving the group",
                        signal.Signals(signum).name)
            stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    publisher = CloudWatchPublisher(triggers).start() if metrics_on else None
    failures: list[BaseException] = []

    def run(trigger: Trigger) -> None:
        try:
            trigger.run(stop_event=stop, duration=args.duration, until_idle_s=args.until_idle_s)
        except BaseException as exc:  # noqa: BLE001 - reported below; the other mappings stop too
            failures.append(exc)
            stop.set()

    if len(triggers) == 1:
        run(triggers[0])
    else:
        threads = [threading.Thread(target=run, args=(t,), name=f"mapping-{t.config.label}") for t in triggers]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    if publisher is not None:
        publisher.stop()
    for exc in failures:
        if isinstance(exc, BrokerUnavailable):
            logger.error("%s", exc)
            return 1
        raise exc
    workers = [t for t in threading.enumerate() if t.name.startswith("trigger-invoke")]
    for t in workers:
        t.join(timeout=1.0)
    if any(t.is_alive() for t in workers):
        # A worker is still blocked in an HTTP call whose result no longer matters (its batch was
        # not committed): do not let interpreter shutdown wait for the read timeout.
        logging.shutdown()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
