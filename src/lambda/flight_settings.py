"""The function's configuration: one frozen object read from the environment once per container.

Variables (defaults in brackets):
  SNS_TOPIC_ARN        required; ARN of the FlightNotifications topic
  METRICS_NAMESPACE    [FlightPipeline] CloudWatch namespace of the per-invocation metrics
  METRICS_ENABLED      [true] false skips PutMetricData (e.g. an account without CloudWatch)
  PUBLISH_CONCURRENCY  [8] PublishBatch calls in flight at once (1..64)
  PUBLISH_MAX_ATTEMPTS [4] tries per SNS entry before it is reported as failed (1..10)
  PUBLISH_BACKOFF_S    [0.05] first retry delay; doubles per attempt, with full jitter, capped at 2 s
  LOG_LEVEL            [INFO]
  AWS_LAMBDA_FUNCTION_NAME (set by Lambda) or FUNCTION_NAME [flight-processor]: metric dimension

The zip is self-contained (only boto3 + stdlib), so this mirrors the tiny env readers of
pipeline_common.settings instead of importing them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

DEFAULT_NAMESPACE = "FlightPipeline"
DEFAULT_FUNCTION_NAME = "flight-processor"

# arn:<partition>:sns:<region>:<account>:<topic>; partitions aws, aws-cn, aws-us-gov, ...
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class FunctionConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FunctionConfigError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise FunctionConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise FunctionConfigError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:  # also rejects NaN
        raise FunctionConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise FunctionConfigError(f"{name}={raw!r} is not a boolean (use true/false)")


@dataclass(frozen=True)
class FunctionSettings:
    sns_topic_arn: str
    metrics_namespace: str = DEFAULT_NAMESPACE
    metrics_enabled: bool = True
    publish_concurrency: int = 8
    publish_max_attempts: int = 4
    publish_backoff_s: float = 0.05
    log_level: str = "INFO"
    function_name: str = DEFAULT_FUNCTION_NAME

    def __post_init__(self) -> None:
        if not _TOPIC_ARN.match(self.sns_topic_arn or ""):
            raise FunctionConfigError(f"SNS_TOPIC_ARN={self.sns_topic_arn!r} is not an SNS topic ARN "
                                      "(arn:aws:sns:<region>:<account>:<name>)")
        if not self.metrics_namespace or self.metrics_namespace.startswith("AWS/") \
                or len(self.metrics_namespace) > 255:
            raise FunctionConfigError(f"METRICS_NAMESPACE={self.metrics_namespace!r} must be 1..255 "
                                      "characters and must not start with 'AWS/'")
        if self.log_level not in _LOG_LEVELS:
            raise FunctionConfigError(f"LOG_LEVEL={self.log_level!r} is not one of {', '.join(_LOG_LEVELS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "FunctionSettings":
        """Read the environment; keyword overrides (values passed in code) win."""
        env = os.environ if env is None else env
        if overrides.get("sns_topic_arn") is None and _raw(env, "SNS_TOPIC_ARN") is None:
            raise FunctionConfigError("SNS_TOPIC_ARN is required but not set")
        values = dict(
            sns_topic_arn=_raw(env, "SNS_TOPIC_ARN"),
            metrics_namespace=_raw(env, "METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
            metrics_enabled=_bool(env, "METRICS_ENABLED", True),
            publish_concurrency=_int(env, "PUBLISH_CONCURRENCY", 8, 1, 64),
            publish_max_attempts=_int(env, "PUBLISH_MAX_ATTEMPTS", 4, 1, 10),
            publish_backoff_s=_float(env, "PUBLISH_BACKOFF_S", 0.05, 0.0, 5.0),
            log_level=(_raw(env, "LOG_LEVEL") or "INFO").upper(),
            function_name=(_raw(env, "AWS_LAMBDA_FUNCTION_NAME") or _raw(env, "FUNCTION_NAME")
                           or DEFAULT_FUNCTION_NAME),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
