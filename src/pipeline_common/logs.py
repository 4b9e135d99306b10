"""Structured logging, one JSON object per line, for every component (the Lambda zip ships it too).

Call ``configure_logging`` once, at an entry point. Modules log with
``logger = logging.getLogger(__name__)`` and %-style arguments; keyword context
(topic, partition, offset, request url, ...) goes in ``extra=`` and is emitted as fields.

Lines for a person (LOG_FORMAT=console) carry the pipeline's own lines only: kafka-python's internal
loggers (``kafka.*``: "Bootstrap failed: KafkaTimeoutError", "Task ... ran for 0.167s ... blocking the
event loop") go to KAFKA_CLIENT_LOG instead. Broker trouble still shows, in our own words: the producer,
the trigger and the tracker log an unreachable broker or a failed send or poll with its topic.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from .settings import Setting
from .shared_settings import LOG_FORMAT, LOG_LEVEL

KAFKA_CLIENT_LOG = Setting(
    "KAFKA_CLIENT_LOG", ".state/logs/kafka-client.log", flag=None,
    help="file that gets kafka-python's own log lines (JSON, with the pid) when logs are for a person "
         "(LOG_FORMAT=console), so a terminal shows the pipeline's lines only; relative to the working "
         "directory (the project, under make)")

# The client library whose internal loggers are taken off a person's console (see the module docstring).
LIBRARY_LOGGERS = ("kafka",)

# Attributes every LogRecord has; anything else came from extra= and is emitted as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# Never let a credential reach a log line, whatever a caller passes in extra=.
_SECRET_KEYS = ("secret", "password", "token", "authorization", "credential")


def mask(value: object) -> str:
    """'abcdef123456' -> 'ab…56' (length hidden), for logging identifiers that are secrets."""
    text = str(value)
    return "***" if len(text) < 8 else f"{text[:2]}…{text[-2:]}"


class JsonFormatter(logging.Formatter):
    def __init__(self, with_pid: bool = False) -> None:
        super().__init__()
        # A file several processes append to (KAFKA_CLIENT_LOG) says which one wrote each line.
        self.with_pid = with_pid

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.with_pid:
            doc["pid"] = record.process
        request_id = getattr(record, "aws_request_id", None)  # set by the Lambda runtime's filter
        if request_id:
            doc["request_id"] = request_id
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_") or key in doc or key == "aws_request_id":
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


def configure_logging(level: str | None = None, fmt: str | None = None,
                      library_log: str | Path | None = None) -> Path | None:
    """LOG_LEVEL (default INFO) and LOG_FORMAT=json|console (default: console on a TTY, else json).

    With console lines, kafka-python's loggers write to ``library_log`` (default KAFKA_CLIENT_LOG) and
    not to the console; returns that file, or None when they share the console's stream (JSON lines,
    which are a log file already, or a folder that cannot be created)."""
    level = (level or LOG_LEVEL.read()).upper()
    fmt = (fmt or LOG_FORMAT.read() or ("console" if sys.stderr.isatty() else "json")).lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection state change).
    library_level = max(logging.WARNING, root.level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(library_level)
    path = _library_file(library_log) if fmt == "console" else None
    for name in LIBRARY_LOGGERS:
        _route(logging.getLogger(name), library_level, path)
    return path


def _library_file(library_log: str | Path | None) -> Path | None:
    path = Path(library_log or KAFKA_CLIENT_LOG.read()).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot create %s (%s): kafka-python's lines stay on the console",
                                            path.parent, exc)
        return None
    return path


def _route(logger: logging.Logger, level: int, path: Path | None) -> None:
    """``logger`` to the file at ``path`` only (not the root's console), or back to the root's handlers."""
    for old in logger.handlers[:]:
        logger.removeHandler(old)
        old.close()
    logger.setLevel(level)
    logger.propagate = path is None
    if path is not None:
        # Opened at the first line: a run the library has nothing to say in leaves no file behind.
        file = logging.FileHandler(path, encoding="utf-8", delay=True)
        file.setFormatter(JsonFormatter(with_pid=True))
        logger.addHandler(file)


def install_json_logging(level: str = "INFO", root: logging.Logger | None = None) -> None:
    """For the Lambda function: JSON lines on the root logger's handlers, adding a stderr handler
    if there is none. The Lambda runtime already attaches a handler (its output goes to CloudWatch
    Logs); replacing only its formatter keeps the runtime's request-id filter in place."""
    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))  # stdout may carry an emulator's protocol
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
