"""Mappings declared the AWS way: from infra/aws/template.yaml or a file of CreateEventSourceMapping properties."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipeline_common.settings import ConfigError
from trigger.__main__ import main
from trigger.declarations import load_mappings
from trigger.metrics import CloudWatchPublisher

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "aws" / "template.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os
    for key in [k for k in os.environ if k.startswith(("TRIGGER_", "KAFKA_DLQ"))]:
        monkeypatch.delenv(key)


def declared(name: str, parameters=None):
    return next(m for m in load_mappings(TEMPLATE, parameters) if m.name == name)


def test_every_mapping_of_the_template_is_read_each_with_its_own_group():
    mappings = {m.name: m for m in load_mappings(TEMPLATE)}
    assert set(mappings) == {"EventSourceMapping", "AlertsEventSourceMapping"}
    processor, alerts = mappings["EventSourceMapping"], mappings["AlertsEventSourceMapping"]
    assert (alerts.function_name, alerts.topics) == ("flight-alerts", processor.topics)
    assert alerts.group_id != processor.group_id


def test_the_template_mapping_becomes_the_same_mapping_aws_would_run():
    # GIVEN infra/aws/template.yaml with its default parameters
    m = declared("EventSourceMapping")
    # THEN the mapping is the template's: its group, topic, function, batching, item failures, Kafka destination
    assert (m.name, m.group_id, m.topics, m.function_name) == (
        "EventSourceMapping", "flight-processor-esm", ("aviation-data",), "flight-processor")
    assert (m.batch_size, m.maximum_batching_window_s, m.starting_position) == (1000, 1.0, "TRIM_HORIZON")
    assert m.report_batch_item_failures and m.on_failure_destination == "kafka://aviation-data-dlq"
    assert m.effective_retry_attempts == 10  # -1 with a destination: AWS applies 10


def test_template_parameters_are_resolved():
    # (the destination type is shared by both mappings: each gets a bucket)
    m = declared("EventSourceMapping", {"BatchSize": "250", "KafkaTopic": "flights-eu", "ConsumerGroupId": "eu",
                                        "OnFailureDestinationType": "S3", "OnFailureDestination": "arn:aws:s3:::failures",
                                        "AlertsOnFailureDestination": "arn:aws:s3:::alert-failures",
                                        "ReportBatchItemFailures": "false", "MaximumBatchingWindowInSeconds": "-1"})
    assert (m.batch_size, m.topics, m.group_id) == (250, ("flights-eu",), "eu")
    assert m.on_failure_destination == "arn:aws:s3:::failures" and not m.report_batch_item_failures
    assert m.maximum_batching_window_s == 0.5  # property left out: Kafka's 500 ms default
    with pytest.raises(ConfigError, match="not template parameters: Nope"):
        load_mappings(TEMPLATE, {"Nope": "1"})


def write(tmp_path, doc) -> Path:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_mappings_file_declares_several_mappings_each_with_its_own_group(tmp_path):
    pattern = json.dumps({"value": {"on_ground": [False]}})
    path = write(tmp_path, {"EventSourceMappings": [
        {"FunctionName": "flight-processor", "Topics": ["aviation-data"],
         "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "processor"}},
        {"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:flight-alerts:live",
         "Topics": ["aviation-data"], "BatchSize": 50, "FilterCriteria": {"Filters": [{"Pattern": pattern}]},
         "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:alerts-failed"}},
         "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "alerts"}},
        {"FunctionName": "off", "Topics": ["x"], "Enabled": False}]})
    processor, alerts = load_mappings(path)
    assert (processor.group_id, processor.on_failure_destination, processor.dlq_topic) == ("processor", None, None)
    assert (alerts.function_name, alerts.qualifier, alerts.batch_size) == ("flight-alerts", "live", 50)
    assert json.loads(alerts.filter_criteria)["Filters"][0]["Pattern"] == pattern


@pytest.mark.parametrize("entry, message", [
    ({"FunctionName": "f", "Topics": ["t"], "BatchSze": 5}, "unknown CreateEventSourceMapping properties"),
    ({"FunctionName": "f", "Topics": ["t"], "BatchSize": 0}, "TRIGGER_BATCH_SIZE"),
    ({"FunctionName": "f", "Topics": ["t"], "FilterCriteria": {"Filters": [{"Pattern": '{"key": ["a"]}'}]}},
     "filter on `value` only"),
    ({"FunctionName": "f", "Topics": ["t"], "DestinationConfig": {"OnFailure": {"Destination": "kafka://t"}}},
     "differ from the source"),
])
def test_a_bad_mapping_is_refused_at_start_naming_the_mapping_and_the_problem(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_mappings(write(tmp_path, [entry]))
    assert "mapping-1" in str(caught.value)


def test_two_mappings_may_not_share_a_consumer_group(tmp_path):
    same = {"FunctionName": "f", "Topics": ["t"], "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"}}
    with pytest.raises(ConfigError, match="'g' is used by more than one mapping"):
        load_mappings(write(tmp_path, [same, {**same, "FunctionName": "h"}]))


def test_the_command_line_refuses_mapping_flags_next_to_a_mappings_file(capsys):
    assert main(["--mappings", str(TEMPLATE), "--batch-size", "5"]) == 2
    assert "drop --batch-size" in capsys.readouterr().err


class _Stats:
    def __init__(self, **kw):
        base = dict(consumed=0, filtered=0, invoked_records=0, function_errors=0, dropped=0, dead_lettered=0, lag=0)
        self.__dict__.update(base, **kw)


class _Mapping:
    def __init__(self, config, stats):
        self.config, self.stats = config, stats


def test_metrics_are_put_with_aws_names_and_count_only_what_is_new(aws_credentials):
    m = declared("EventSourceMapping")
    mapping = _Mapping(m, _Stats(consumed=10, filtered=4, invoked_records=6, dead_lettered=1, lag=7))
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        publisher = CloudWatchPublisher([mapping], client=cw, interval_s=60)
        publisher.publish()
        mapping.stats = _Stats(consumed=15, filtered=4, invoked_records=11, dead_lettered=1, lag=0)
        publisher.publish()
        names = {x["MetricName"] for x in cw.list_metrics(Namespace="AWS/Lambda")["Metrics"]}
        assert names == {"PolledEventCount", "FilteredOutEventCount", "InvokedEventCount", "FailedInvokeEventCount",
                         "DroppedEventCount", "OnFailureDestinationDeliveredEventCount", "OffsetLag"}

        def total(name):
            points = cw.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName=name, Statistics=["Sum"], Period=60,
                Dimensions=[{"Name": "EventSourceMappingUUID", "Value": m.mapping_uuid}],
                StartTime="2000-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z")["Datapoints"]
            return sum(p["Sum"] for p in points)
        assert (total("PolledEventCount"), total("FilteredOutEventCount"), total("InvokedEventCount")) == (15, 4, 11)
        assert total("OnFailureDestinationDeliveredEventCount") == 1
