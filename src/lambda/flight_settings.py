"""The function's configuration: one frozen object read from the environment once per container.

Declared with pipeline_common.settings, which the zip ships at its root (standard library only),
so the settings table (docs/CONFIGURATION.md) and the error messages come from the same declarations as every other component.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pipeline_common.settings import ConfigError, Setting, Settings, setting
from pipeline_common.shared_settings import DEFAULT_FUNCTION_NAME, LOG_LEVEL, METRICS_NAMESPACE

# The function's errors are ConfigErrors like everyone's; the old name stays for readers of the handler.
FunctionConfigError = ConfigError

# arn:<partition>:sns:<region>:<account>:<topic>; partitions aws, aws-cn, aws-us-gov, ...
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_FUNCTION_NAME = Setting("AWS_LAMBDA_FUNCTION_NAME", DEFAULT_FUNCTION_NAME, fallback_env=("FUNCTION_NAME",),
                         doc_default="set by Lambda; else `flight-processor`",
                         help="the `FunctionName` dimension of the function's metrics")


@dataclass(frozen=True)
class FunctionSettings(Settings):
    FLAGS: ClassVar[bool] = False  # a Lambda function has no command line
    USED_BY: ClassVar[str] = "function (the deployer passes it on when set)"

    sns_topic_arn: str = setting("SNS_TOPIC_ARN", None, required=True, doc_default="set by the deployer",
                                 help="ARN of the FlightNotifications topic (required)")
    metrics_namespace: str = METRICS_NAMESPACE.field()
    metrics_enabled: bool = setting("METRICS_ENABLED", True,
                                    help="false skips PutMetricData (e.g. an account without CloudWatch)")
    publish_concurrency: int = setting("PUBLISH_CONCURRENCY", 8, minimum=1, maximum=64,
                                       help="SNS PublishBatch calls in flight at once")
    publish_max_attempts: int = setting("PUBLISH_MAX_ATTEMPTS", 4, minimum=1, maximum=10,
                                        help="tries per SNS entry before it is reported as failed")
    publish_backoff_s: float = setting("PUBLISH_BACKOFF_S", 0.05, minimum=0.0, maximum=5.0, unit="s",
                                       help="first publish retry delay; doubles per attempt, full jitter, "
                                            "capped at 2 s")
    log_level: str = LOG_LEVEL.field()
    function_name: str = _FUNCTION_NAME.field()

    def check(self) -> None:
        if not _TOPIC_ARN.match(self.sns_topic_arn):
            raise ConfigError(f"SNS_TOPIC_ARN={self.sns_topic_arn!r} is not an SNS topic ARN "
                              "(arn:aws:sns:<region>:<account>:<name>)")
        if not self.metrics_namespace or self.metrics_namespace.startswith("AWS/") \
                or len(self.metrics_namespace) > 255:
            raise ConfigError(f"METRICS_NAMESPACE={self.metrics_namespace!r} must be 1..255 "
                              "characters and must not start with 'AWS/'")
