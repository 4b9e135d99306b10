"""The trigger's settings: AWS-named TRIGGER_* variables, defaults, and errors that name the variable."""
from __future__ import annotations

import pytest

from pipeline_common.settings import ConfigError
from trigger.mapping import TriggerConfig


def test_defaults_follow_aws_where_aws_has_one():
    cfg = TriggerConfig.from_env(env={})
    # BatchSize is the one deliberate exception (AWS: 100): the typical session needs fewer invocations.
    assert (cfg.batch_size, cfg.maximum_batching_window_s, cfg.max_payload_bytes) == (1000, 0.5, 6 * 1024 * 1024)
    assert cfg.maximum_retry_attempts == -1 and cfg.maximum_record_age_s == -1
    assert cfg.group_id == "flight-trigger" and cfg.function_name == "flight-processor"
    assert cfg.topic == "aviation-data" and cfg.dlq_topic == "aviation-data-dlq"
    assert cfg.event_source == "SelfManagedKafka" and cfg.mode == "batch"


def test_variables_are_read_and_values_passed_in_code_win():
    env = {"TRIGGER_BATCH_SIZE": "5000", "TRIGGER_MAXIMUM_BATCHING_WINDOW_S": "2", "TRIGGER_GROUP_ID": "g1",
           "TRIGGER_STARTING_POSITION": "latest", "TRIGGER_CONCURRENCY": "3", "TRIGGER_MAXIMUM_RETRY_ATTEMPTS": "4",
           "TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR": "true", "TRIGGER_REPORT_BATCH_ITEM_FAILURES": "false",
           "TRIGGER_MODE": "per-message", "TRIGGER_DLQ_SQS_URL": "http://q", "FUNCTION_NAME": "fn-from-lambda-env",
           "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092"}
    cfg = TriggerConfig.from_env(env=env, batch_size=10, group_id=None)
    assert cfg.batch_size == 10 and cfg.group_id == "g1" and cfg.starting_position == "LATEST"
    assert cfg.maximum_batching_window_s == 2 and cfg.concurrency == 3 and cfg.maximum_retry_attempts == 4
    assert cfg.bisect_batch_on_function_error and not cfg.report_batch_item_failures
    assert cfg.per_message and cfg.dlq_sqs_url == "http://q" and cfg.function_name == "fn-from-lambda-env"
    assert cfg.kafka.bootstrap_servers == "b1:9092,b2:9092"
    assert TriggerConfig.from_env(env={"TRIGGER_FUNCTION_NAME": "a", "FUNCTION_NAME": "b"}).function_name == "a"


def test_an_msk_arn_makes_aws_kafka_events():
    cfg = TriggerConfig.from_env(env={"TRIGGER_EVENT_SOURCE_ARN": "arn:aws:kafka:us-east-1:1:cluster/c/x"})
    assert cfg.event_source == "aws:kafka"


@pytest.mark.parametrize("env, variable", [
    ({"TRIGGER_BATCH_SIZE": "10001"}, "TRIGGER_BATCH_SIZE"),
    ({"TRIGGER_BATCH_SIZE": "lots"}, "TRIGGER_BATCH_SIZE"),
    ({"TRIGGER_MAXIMUM_BATCHING_WINDOW_S": "301"}, "TRIGGER_MAXIMUM_BATCHING_WINDOW_S"),
    ({"TRIGGER_STARTING_POSITION": "BEGINNING"}, "TRIGGER_STARTING_POSITION"),
    ({"TRIGGER_STARTING_POSITION": "AT_TIMESTAMP"}, "TRIGGER_STARTING_POSITION_TIMESTAMP"),
    ({"TRIGGER_MAXIMUM_RETRY_ATTEMPTS": "-2"}, "TRIGGER_MAXIMUM_RETRY_ATTEMPTS"),
    ({"TRIGGER_MAXIMUM_RECORD_AGE_S": "30"}, "TRIGGER_MAXIMUM_RECORD_AGE_S"),
    ({"TRIGGER_EVENT_SOURCE": "aws:kafka"}, "TRIGGER_EVENT_SOURCE_ARN"),
    ({"TRIGGER_MODE": "stream"}, "TRIGGER_MODE"),
    ({"KAFKA_DLQ_TOPIC": "aviation-data"}, "KAFKA_DLQ_TOPIC"),
    ({"TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR": "maybe"}, "TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR"),
])
def test_a_bad_value_is_refused_at_start_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        TriggerConfig.from_env(env=env)


def test_retry_cap_with_a_destination_mirrors_aws():
    assert TriggerConfig().effective_retry_attempts == 10
    assert TriggerConfig(dlq_topic=None).effective_retry_attempts == -1
    assert TriggerConfig(dlq_topic=None, dlq_sqs_url="http://q").effective_retry_attempts == 10
    assert TriggerConfig(maximum_retry_attempts=3).effective_retry_attempts == 3
    assert TriggerConfig.from_env(env={"KAFKA_DLQ_TOPIC": "none"}).dlq_topic is None


def test_the_config_is_frozen():
    with pytest.raises(AttributeError):
        TriggerConfig().batch_size = 5
