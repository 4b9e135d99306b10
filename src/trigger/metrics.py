"""AWS's event source mapping metrics for each running mapping, put to CloudWatch on AWS_ENDPOINT_URL.

Names as AWS publishes them for Kafka mappings (docs: monitoring-metrics-types, "Event source mapping
metrics" and "OffsetLag"): PolledEventCount, FilteredOutEventCount, InvokedEventCount,
FailedInvokeEventCount, OnFailureDestinationDeliveredEventCount, DroppedEventCount, each with the
dimension EventSourceMappingUUID, and OffsetLag (records between the end of the topic and the group's
committed offset) with FunctionName and EventSourceMappingUUID. Counts are the increase since the
previous put, every TRIGGER_METRICS_INTERVAL_S (60 s: CloudWatch's standard resolution). The
namespace is AWS/Lambda (TRIGGER_METRICS_NAMESPACE), so dashboards built for AWS read them unchanged.
"""
from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

# stats field -> AWS metric name
COUNTS = {"consumed": "PolledEventCount", "filtered": "FilteredOutEventCount", "invoked_records": "InvokedEventCount",
          "function_errors": "FailedInvokeEventCount", "dropped": "DroppedEventCount"}
DELIVERED = "OnFailureDestinationDeliveredEventCount"


def metric_data(trigger, previous: dict) -> tuple[list[dict], dict]:
    """The datums for one mapping since `previous` (a dict of its last counts), and the new counts."""
    s = trigger.stats
    cfg = trigger.config
    counts = {field: getattr(s, field) for field in COUNTS}
    counts["delivered"] = s.dead_lettered - s.dropped
    mapping = [{"Name": "EventSourceMappingUUID", "Value": cfg.mapping_uuid}]
    data = [{"MetricName": name, "Dimensions": mapping, "Unit": "Count",
             "Value": float(counts[field] - previous.get(field, 0))} for field, name in COUNTS.items()]
    data.append({"MetricName": DELIVERED, "Dimensions": mapping, "Unit": "Count",
                 "Value": float(counts["delivered"] - previous.get("delivered", 0))})
    data.append({"MetricName": "OffsetLag", "Unit": "Count", "Value": float(s.lag),
                 "Dimensions": [{"Name": "FunctionName", "Value": cfg.function_name}, *mapping]})
    return data, counts


class CloudWatchPublisher:
    """A daemon thread that puts every mapping's metrics each interval, and once more on stop()."""

    def __init__(self, triggers, client=None, namespace: str = "AWS/Lambda", interval_s: float = 60.0) -> None:
        self.triggers = list(triggers)
        self.namespace = namespace
        self.interval_s = interval_s
        self._client = client
        self._previous: dict = {id(t): {} for t in self.triggers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trigger-metrics", daemon=True)
        self._failed_once = False

    def start(self) -> "CloudWatchPublisher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish()
        self.publish()

    def publish(self) -> None:
        if self._client is None:
            import boto3
            self._client = boto3.client("cloudwatch")
        for trigger in self.triggers:
            data, counts = metric_data(trigger, self._previous[id(trigger)])
            try:
                self._client.put_metric_data(Namespace=self.namespace, MetricData=data)
            except Exception as exc:  # noqa: BLE001 - metrics never stop the mapping; the status line has them too
                (logger.warning if not self._failed_once else logger.debug)(
                    "CloudWatch metrics not published (%s: %s)", type(exc).__name__, exc,
                    extra={"group": trigger.config.group_id})
                self._failed_once = True
                continue
            self._previous[id(trigger)] = counts
