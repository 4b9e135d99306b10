"""Settings that more than one component reads, declared once here (standard library only: the
Lambda zip ships it). Each component makes them fields with ``KAFKA_TOPIC.field()``."""
from __future__ import annotations

from .settings import Setting

DEFAULT_TOPIC = "aviation-data"
DEFAULT_DLQ_TOPIC = "aviation-data-dlq"
DEFAULT_FUNCTION_NAME = "flight-processor"
DEFAULT_METRICS_NAMESPACE = "FlightPipeline"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

KAFKA_TOPIC = Setting("KAFKA_TOPIC", DEFAULT_TOPIC, flag="--topic", help="the flight-state topic")
KAFKA_DLQ_TOPIC = Setting("KAFKA_DLQ_TOPIC", DEFAULT_DLQ_TOPIC, flag="--dlq-topic",
                          help="the on-failure (dead-letter) topic (trigger: `none` turns it off)")
FUNCTION_NAME = Setting("FUNCTION_NAME", DEFAULT_FUNCTION_NAME, help="the function's name")
METRICS_NAMESPACE = Setting("METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE,
                            help="CloudWatch namespace of the function's metrics (count-messages reads it)")
LOG_LEVEL = Setting("LOG_LEVEL", "INFO", choices=LOG_LEVELS, parse=str.upper, help="log level")
LOG_FORMAT = Setting("LOG_FORMAT", None, choices=("json", "console"), parse=str.lower,
                     doc_default="`console` on a terminal, else `json`", help="log line format (the function: JSON always)")
