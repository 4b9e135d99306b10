"""Lambda entry point: Kafka ESM batch (or raw states) -> flights in the air -> SNS FlightNotifications.

Handler: ``flight_handler.lambda_handler``. Returns
  {"received", "in_air", "published", "filtered", "failed",
   "batchItemFailures": [{"itemIdentifier": {"partition": "<topic>-<partition>", "offset": N}}],
   "failureReasons": [{"partition": "<topic>-<partition>", "offset": N, "reason": "..."}]}
where every record that could not be read, was malformed, or could not be published is a failure;
records filtered out (on the ground, no position, altitude <= 0) are not.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flight_domain.flight_transform import evaluate, judge_records
from flight_metrics import emit_invocation_metrics
from flight_settings import FunctionSettings
from kafka_esm import InputRecord, failure_response, read_event
from lambda_clients import RuntimeSlot, client as _client, encode_form_once as _encode_form_once  # noqa: F401 (tests)
from pipeline_common.logs import install_json_logging
from sns_batch import Notification, SnsBatchPublisher

logger = logging.getLogger(__name__)

# Compact, UTF-8 (not ASCII-escaped) JSON: smaller messages, and one encoder for the whole container.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class FunctionRuntime:
    """What one container keeps between invocations: settings, clients, the publish thread pool."""
    settings: FunctionSettings
    sns: object
    cloudwatch: object
    executor: ThreadPoolExecutor

    def publisher(self) -> SnsBatchPublisher:
        return SnsBatchPublisher(self.sns, self.settings.sns_topic_arn, executor=self.executor,
                                 max_attempts=self.settings.publish_max_attempts,
                                 backoff_s=self.settings.publish_backoff_s)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


_slot: RuntimeSlot[FunctionRuntime] = RuntimeSlot()


def configure(settings: FunctionSettings | None = None, *, sns_client=None, cloudwatch_client=None) -> FunctionRuntime:
    """Build (or rebuild) the container's runtime; values passed in win, the rest comes from env.

    The Lambda runtime calls this implicitly at cold start; tests call it with mocked clients.
    """
    def build() -> FunctionRuntime:
        s = settings or FunctionSettings.from_env()
        return FunctionRuntime(
            settings=s,
            sns=sns_client or _client("sns", s),
            cloudwatch=cloudwatch_client or _client("cloudwatch", s),
            executor=ThreadPoolExecutor(max_workers=s.publish_concurrency, thread_name_prefix="sns-publish"),
        )
    return _slot.install(build)


def reset() -> None:
    """Forget the cached runtime (tests; a changed environment)."""
    _slot.reset()


def _current() -> FunctionRuntime:
    return _slot.current(configure)


def _attributes(record: InputRecord, notification: dict) -> dict:
    attributes = {"origin_country": {"DataType": "String", "StringValue": notification["origin_country"]}}
    if record.timestamp_ms is not None:
        attributes["kafka_timestamp_ms"] = {"DataType": "Number", "StringValue": str(record.timestamp_ms)}
    # The emitter category (OpenSky field 17) rides as an attribute, not in the body (which stays the
    # brief's eight fields), so subscribers can filter on it, e.g. {"category": [{"numeric": ["=", 6]}]}.
    # 0 and 1 mean "no information", so they are left out like a null.
    category = record.state.get("category") if isinstance(record.state, dict) else None
    if type(category) is int and 2 <= category <= 20:
        attributes["category"] = {"DataType": "Number", "StringValue": str(category)}
    return attributes


def process_event(event: object, runtime: FunctionRuntime) -> dict:
    """The whole invocation, with the runtime passed in."""
    started = time.perf_counter()
    records = read_event(event)
    kept, failures, filtered = judge_records(records, evaluate)
    outgoing = [Notification(index, _encode(notification), _attributes(records[index], notification))
                for index, notification in kept]

    for failure in runtime.publisher().publish(outgoing):
        failures[failure.ref] = f"publish failed: {failure.reason}"
    publish_failures = sum(1 for n in outgoing if n.ref in failures)

    response = failure_response(records, failures)
    counts = {"received": len(records), "in_air": len(outgoing), "published": len(outgoing) - publish_failures,
              "filtered": filtered, "failed": len(failures)}
    if runtime.settings.metrics_enabled:
        emit_invocation_metrics(runtime.cloudwatch, runtime.settings.metrics_namespace,
                                runtime.settings.function_name, counts)
    logger.info("processed %d records: %d in the air, %d published, %d filtered, %d failed",
                counts["received"], counts["in_air"], counts["published"], counts["filtered"], counts["failed"],
                extra={**counts, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    return {**counts, **response}


def lambda_handler(event, context):
    return process_event(event, _current())


# Inside a Lambda runtime (real or emulated) build everything during the init phase: a missing or
# malformed setting fails the cold start with a message naming the variable, and the clients and
# thread pool are ready before the first batch arrives.
if os.environ.get("LAMBDA_TASK_ROOT"):
    install_json_logging()
    logging.getLogger().setLevel(_current().settings.log_level)
