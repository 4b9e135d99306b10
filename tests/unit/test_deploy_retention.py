"""Retention settings of the deployer: what nobody reads is not kept for ever."""
import pytest

from infra.deploy.aws_resources import AwsResourceSettings
from pipeline_common.settings import ConfigError


def test_defaults_bound_the_demo_queue_and_the_function_logs():
    cfg = AwsResourceSettings.from_env({})
    assert cfg.queue_retention_s == 300 and cfg.log_retention_days == 1


def test_a_retention_cloudwatch_does_not_accept_is_rejected_naming_the_variable():
    with pytest.raises(ConfigError, match="LOG_RETENTION_DAYS=2 is not one of CloudWatch's values: 1, 3, 5"):
        AwsResourceSettings.from_env({"LOG_RETENTION_DAYS": "2"})


def test_a_queue_retention_below_sqs_minimum_is_rejected_naming_the_variable():
    with pytest.raises(ConfigError, match="NOTIFY_QUEUE_RETENTION_S"):
        AwsResourceSettings.from_env({"NOTIFY_QUEUE_RETENTION_S": "59"})
