"""Deployment tooling under moto: idempotent deploys, least-privilege IAM, the filtered demo subscriber,
count-messages and notifications (infra/demo/observe.py) as a user sees them, teardown."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

import flight_handler  # the function's modules are importable top-level (pyproject.toml)
from flight_settings import FunctionSettings
from infra.demo import observe
from infra.deploy import aws_resources
from infra.deploy.aws_resources import AwsClients, AwsResourceSettings
from pipeline_common.settings import ConfigError
from saved_events import load_event

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        yield AwsClients(boto3.session.Session(region_name="us-east-1"))


@pytest.fixture
def settings(tmp_path) -> AwsResourceSettings:
    src = tmp_path / "lambda"
    shutil.copytree(ROOT / "src" / "lambda", src, ignore=shutil.ignore_patterns("__pycache__"))
    return AwsResourceSettings.from_env({}, lambda_src=src)


def quiet(_message: str) -> None:
    pass


def publish_through_the_function(aws: AwsClients, topic_arn: str, event_name: str = "esm_flights_self_managed.json"):
    """Run the real handler against the deployed topic (moto cannot run the zip without Docker)."""
    runtime = flight_handler.configure(FunctionSettings(sns_topic_arn=topic_arn, function_name="flight-processor"),
                                sns_client=aws.sns, cloudwatch_client=aws.cloudwatch)
    try:
        return flight_handler.process_event(load_event(event_name), runtime)
    finally:
        flight_handler.reset()


def test_deploy_resources_creates_everything_and_running_it_twice_is_fine(aws, settings):
    first = aws_resources.deploy_resources(settings, aws, say=quiet)
    second = aws_resources.deploy_resources(settings, aws, say=quiet)
    assert first["action"] == "created" and second["action"] == "updated"
    for key in ("topic_arn", "role_arn", "function_arn", "queue_url", "queue_arn", "subscription_arn"):
        assert first[key] == second[key]
    assert first["topic_arn"].endswith(":FlightNotifications")

    config = aws.lambda_.get_function_configuration(FunctionName="flight-processor")
    assert (config["Runtime"], config["Handler"], config["Timeout"], config["MemorySize"]) == (
        "python3.12", "flight_handler.lambda_handler", 60, 512)
    assert config["State"] == "Active" and config["LastUpdateStatus"] == "Successful"
    # LOG_LEVEL=INFO by default: a function that logs nothing makes MiniStack wait after every invoke
    assert config["Environment"]["Variables"] == {"SNS_TOPIC_ARN": first["topic_arn"],
                                                  "METRICS_NAMESPACE": "FlightPipeline", "LOG_LEVEL": "INFO"}
    [subscription] = aws.sns.list_subscriptions_by_topic(TopicArn=first["topic_arn"])["Subscriptions"]
    attributes = aws.sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {
        "origin_country": ["United States", "Germany", "United Kingdom", "France"]}
    assert attributes["RawMessageDelivery"] == "true"


def test_execution_role_may_only_publish_to_the_topic_put_our_metrics_and_write_logs(aws, settings):
    deployed = aws_resources.deploy_resources(settings, aws, say=quiet)
    role = aws.iam.get_role(RoleName="flight-processor-role")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    policy = aws.iam.get_role_policy(RoleName="flight-processor-role",
                                     PolicyName=aws_resources.INLINE_POLICY_NAME)["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["PublishFlightNotifications"]["Action"] == "sns:Publish"
    assert statements["PublishFlightNotifications"]["Resource"] == deployed["topic_arn"]
    assert statements["PutPipelineMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "FlightPipeline"}}
    assert statements["WriteFunctionLogs"]["Resource"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/flight-processor:*")
    actions = sorted(a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                               else s["Action"]))
    assert actions == ["cloudwatch:PutMetricData", "logs:CreateLogGroup", "logs:CreateLogStream",
                       "logs:PutLogEvents", "sns:Publish"]
    queue_policy = json.loads(aws.sqs.get_queue_attributes(QueueUrl=deployed["queue_url"], AttributeNames=["Policy"])[
        "Attributes"]["Policy"])
    assert queue_policy["Statement"][0]["Condition"] == {"ArnEquals": {"aws:SourceArn": deployed["topic_arn"]}}


def test_redeploy_updates_changed_code_and_configuration(aws, settings, tmp_path):
    first = aws_resources.deploy_lambda(settings=settings, clients=aws, say=quiet)
    code = settings.lambda_src / "flight_handler.py"
    code.write_text(code.read_text() + "\n# v2\n")
    changed = AwsResourceSettings.from_env({"LAMBDA_MEMORY": "1024", "PUBLISH_CONCURRENCY": "16"},
                                           lambda_src=settings.lambda_src)
    lines = []
    second = aws_resources.deploy_lambda(settings=changed, clients=aws, say=lines.append)
    assert second["code_sha256"] != first["code_sha256"] and "updating code of flight-processor" in lines
    config = aws.lambda_.get_function_configuration(FunctionName="flight-processor")
    assert config["MemorySize"] == 1024
    assert config["Environment"]["Variables"]["PUBLISH_CONCURRENCY"] == "16"
    lines.clear()
    aws_resources.deploy_lambda(settings=changed, clients=aws, say=lines.append)
    assert "function flight-processor: code unchanged" in lines


def test_an_update_in_progress_is_waited_out(aws, settings):
    aws_resources.deploy_lambda(settings=settings, clients=aws, say=quiet)
    code = settings.lambda_src / "flight_handler.py"
    code.write_text(code.read_text() + "\n# v2\n")
    conflict = ClientError({"Error": {"Code": "ResourceConflictException",
                                      "Message": "An update is in progress for resource"}}, "UpdateFunctionCode")
    real = aws.lambda_.update_function_code
    answers = [conflict, conflict]

    def busy_twice(**kwargs):
        if answers:
            raise answers.pop()
        return real(**kwargs)

    lines = []
    with mock.patch.object(aws.lambda_, "update_function_code", side_effect=busy_twice) as update:
        result = aws_resources.deploy_lambda(settings=settings, clients=aws, say=lines.append)
    assert update.call_count == 3
    assert result["code_sha256"] == aws.lambda_.get_function_configuration(FunctionName="flight-processor")[
        "CodeSha256"]
    assert sum("an update of flight-processor is in progress" in line for line in lines) == 2


def test_count_messages_sums_the_published_metric_of_this_function_in_the_window(aws, settings):
    deployed = aws_resources.deploy_resources(settings, aws, say=quiet)
    assert observe.count_messages(1, settings, aws) == 0
    publish_through_the_function(aws, deployed["topic_arn"])   # 5 published
    publish_through_the_function(aws, deployed["topic_arn"], "raw_state.json")  # 1 more
    now = datetime.now(timezone.utc)
    aws.cloudwatch.put_metric_data(Namespace="FlightPipeline", MetricData=[  # noise that must not count
        {"MetricName": "Published", "Value": 100, "Unit": "Count", "Timestamp": now - timedelta(minutes=30),
         "Dimensions": [{"Name": "FunctionName", "Value": "flight-processor"}]},
        {"MetricName": "Published", "Value": 7, "Unit": "Count",
         "Dimensions": [{"Name": "FunctionName", "Value": "someone-else"}]}])
    assert observe.count_messages(5, settings, aws, now=now + timedelta(seconds=1)) == 6
    assert observe.count_messages(60, settings, aws, now=now + timedelta(seconds=1)) == 106
    with pytest.raises(ValueError, match="mins must be a whole number"):
        observe.count_messages(0, settings, aws)


def test_count_messages_cli_prints_a_one_line_answer(aws, settings, capsys):
    deployed = aws_resources.deploy_resources(settings, aws, say=quiet)
    publish_through_the_function(aws, deployed["topic_arn"])
    assert observe.main(["count-messages", "--mins", "5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["5 notification(s) published to FlightNotifications in the last 5 minute(s) "
                   "(CloudWatch FlightPipeline/Published, FunctionName=flight-processor)"]


def test_notifications_prints_one_line_per_notification_for_subscribed_countries_only(aws, settings, capsys):
    deployed = aws_resources.deploy_resources(settings, aws, say=quiet)
    publish_through_the_function(aws, deployed["topic_arn"])  # 5 airborne, one of them from Spain
    shown = observe.notifications(max_messages=10, seconds=1, settings=settings, clients=aws)
    lines = capsys.readouterr().out.strip().splitlines()
    assert shown == 4 and len(lines) == 4
    flights = [json.loads(line) for line in lines]
    assert sorted(f["origin_country"] for f in flights) == ["France", "Germany", "United Kingdom", "United States"]
    assert all(set(f) == {"icao24", "callsign", "origin_country", "time_position", "longitude", "latitude",
                          "altitude_feet", "velocity_knots"} for f in flights)
    # printed notifications were deleted: nothing is shown twice
    assert observe.notifications(seconds=1, settings=settings, clients=aws, say=quiet) == 0


def test_notification_countries_are_configurable(aws, settings):
    only_spain = AwsResourceSettings.from_env({"NOTIFY_COUNTRIES": " Spain , "}, lambda_src=settings.lambda_src)
    deployed = aws_resources.deploy_resources(only_spain, aws, say=quiet)
    publish_through_the_function(aws, deployed["topic_arn"])
    got = []
    observe.notifications(max_messages=5, seconds=1, settings=only_spain, clients=aws, on_message=got.append,
                                say=quiet)
    assert [json.loads(line)["icao24"] for line in got] == ["343abc"]


def test_destroy_removes_everything_and_tolerates_running_twice(aws, settings):
    aws_resources.deploy_resources(settings, aws, say=quiet)
    lines = []
    aws_resources.destroy(settings, aws, say=lines.append)
    assert lines == ["function flight-processor: deleted", "IAM role flight-processor-role: deleted",
                     "SNS topic FlightNotifications: deleted", "SQS queue flight-notifications-demo: deleted"]
    assert aws.lambda_.list_functions()["Functions"] == []
    assert aws.sns.list_topics()["Topics"] == [] and "QueueUrls" not in aws.sqs.list_queues()
    lines.clear()
    aws_resources.destroy(settings, aws, say=lines.append)
    assert all(line.endswith("not found") for line in lines) and len(lines) == 4


def test_cli_create_topic_prints_progress_and_bad_settings_exit_2(aws, capsys, monkeypatch):
    assert aws_resources.main(["create-sns-topic"]) == 0
    assert "==> SNS topic FlightNotifications: arn:aws:sns:us-east-1:123456789012:FlightNotifications" in \
        capsys.readouterr().out
    monkeypatch.setenv("LAMBDA_MEMORY", "64")
    assert aws_resources.main(["deploy-lambda"]) == 2
    assert "LAMBDA_MEMORY=64 is outside 128..10240 MB" in capsys.readouterr().err


def test_function_environment_passes_tuning_but_not_the_deployers_endpoint():
    settings = AwsResourceSettings.from_env({"AWS_ENDPOINT_URL": "http://localhost:4566", "PUBLISH_CONCURRENCY": "16",
                                             "METRICS_NAMESPACE": "Flights2", "LOG_LEVEL": "DEBUG"})
    env = aws_resources.function_environment("arn:aws:sns:us-east-1:123456789012:T", settings)
    assert env == {"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:T", "METRICS_NAMESPACE": "Flights2",
                   "PUBLISH_CONCURRENCY": "16", "LOG_LEVEL": "DEBUG"}


@pytest.mark.parametrize("env, message", [
    ({"LAMBDA_TIMEOUT": "0"}, "LAMBDA_TIMEOUT=0 is outside 1..900 seconds"),
    ({"LAMBDA_TIMEOUT": "soon"}, "LAMBDA_TIMEOUT='soon' is not an integer"),
    ({"NOTIFY_COUNTRIES": " , "}, "NOTIFY_COUNTRIES"),
])
def test_bad_deployer_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        AwsResourceSettings.from_env(env)
