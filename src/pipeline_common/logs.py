"""Structured logging for the long-running components: one JSON object per line.

Call ``configure_logging`` once, at an entry point. Modules log with
``logger = logging.getLogger(__name__)`` and %-style arguments; keyword context
(topic, partition, offset, request url, ...) goes in ``extra=`` and is emitted as fields.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

# Attributes every LogRecord has; anything else came from extra= and is emitted as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# Never let a credential reach a log line, whatever a caller passes in extra=.
_SECRET_KEYS = ("secret", "password", "token", "authorization", "credential")


def mask(value: object) -> str:
    """'abcdef123456' -> 'ab…56' (length hidden), for logging identifiers that are secrets."""
    text = str(value)
    return "***" if len(text) < 8 else f"{text[:2]}…{text[-2:]}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if any(s in key.lower() for s in _SECRET_KEYS):
                value = mask(value)
            doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Human-readable: '18:59:01 INFO  producer.kafka_sink  published 812  topic=aviation-data'."""

    def format(self, record: logging.LogRecord) -> str:
        extras = []
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if any(s in key.lower() for s in _SECRET_KEYS):
                value = mask(value)
            extras.append(f"{key}={value}")
        line = "%s %-5s %s  %s" % (time.strftime("%H:%M:%S", time.localtime(record.created)),
                                    record.levelname, record.name, record.getMessage())
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """LOG_LEVEL (default INFO) and LOG_FORMAT=json|console (default: console on a TTY, else json)."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")).lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection state change).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
