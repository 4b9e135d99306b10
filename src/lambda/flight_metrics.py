"""Custom CloudWatch metrics, one PutMetricData call per invocation.

Namespace: ``FlightPipeline`` (env METRICS_NAMESPACE), dimension ``FunctionName``, unit Count:
  Received  records in the invocation's event
  InAir     records that were flights in the air (filtered ones are Received - InAir - parse failures)
  Published notifications SNS accepted
  Failed    records reported in batchItemFailures (unreadable, malformed or not published)
``make count-messages`` sums ``Published``: the AWS emulators do not emit SNS's own
NumberOfMessagesPublished, and on real AWS this also counts only this pipeline's messages.
A metrics failure is logged and never fails the invocation.
"""
from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

METRIC_NAMES = {"received": "Received", "in_air": "InAir", "published": "Published", "failed": "Failed"}


def metric_data(counts: dict, function_name: str, names: dict = METRIC_NAMES) -> list[dict]:
    """The PutMetricData entries for one invocation's counts."""
    dimensions = [{"Name": "FunctionName", "Value": function_name}]
    return [{"MetricName": name, "Dimensions": dimensions, "Value": float(counts.get(key, 0)), "Unit": "Count"}
            for key, name in names.items()]


def emit_invocation_metrics(client, namespace: str, function_name: str, counts: dict,
                            names: dict = METRIC_NAMES) -> bool:
    """Send the counts (``names`` maps count keys to metric names); True if CloudWatch accepted them.
    Never raises."""
    try:
        client.put_metric_data(Namespace=namespace, MetricData=metric_data(counts, function_name, names))
        return True
    except (ClientError, BotoCoreError) as exc:
        logger.warning("could not put metrics to %s: %s", namespace, exc, extra={"namespace": namespace})
    except Exception:  # a metrics bug must not turn a processed batch into a failed invocation
        logger.exception("unexpected error while putting metrics to %s", namespace, extra={"namespace": namespace})
    return False
