"""JSON-lines log formatting for the function (the zip cannot import pipeline_common.logs)."""
from __future__ import annotations

import json
import logging
import time

# Attributes every LogRecord has; anything else came from extra= and is emitted as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "aws_request_id", None)  # set by the Lambda runtime's filter
        if request_id:
            doc["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc and key != "aws_request_id":
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def install_json_logging(level: str = "INFO", root: logging.Logger | None = None) -> None:
    """Format the root logger's handlers as JSON lines, adding a stderr handler if there is none.

    The Lambda runtime already attaches a handler to the root logger (its output goes to CloudWatch
    Logs); replacing only its formatter keeps the runtime's request-id filter in place.
    """
    import sys

    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))  # stdout may carry an emulator's protocol
    for handler in root.handlers:
        handler.setFormatter(JsonLineFormatter())
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
