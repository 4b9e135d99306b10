"""Retention on the real AWS endpoint (MiniStack): the demo queue drops what nobody reads, the
function's log group has a retention policy."""
import time
import uuid

import pytest

from infra.deploy import aws_resources


@pytest.fixture
def aws(stack):
    return aws_resources.AwsClients()


def test_the_function_log_group_gets_its_retention_policy(aws):
    # GIVEN a function name and the default settings
    settings = aws_resources.AwsResourceSettings.from_env(function_name=f"retention-{uuid.uuid4().hex[:6]}")
    # WHEN the deployer ensures its log group (twice: it is idempotent)
    for _ in range(2):
        aws_resources.ensure_log_retention(settings.function_name, settings.log_retention_days, aws,
                                           say=lambda m: None)
    # THEN the group exists with a one-day retention
    group = f"/aws/lambda/{settings.function_name}"
    found = aws.logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    try:
        assert [(g["logGroupName"], g.get("retentionInDays")) for g in found] == [(group, 1)]
    finally:
        aws.logs.delete_log_group(logGroupName=group)


@pytest.mark.slow
def test_a_notification_nobody_reads_is_dropped_after_the_queue_retention(aws):
    # GIVEN the demo subscriber deployed with a 60 s retention (SQS's minimum)
    run = uuid.uuid4().hex[:6]
    settings = aws_resources.AwsResourceSettings.from_env(topic_name=f"retention-{run}",
                                                          queue_name=f"retention-{run}", queue_retention_s=60)
    topic_arn = aws_resources.create_sns_topic(settings, aws, say=lambda m: None)
    queue = aws_resources.ensure_demo_queue(topic_arn, settings, aws, say=lambda m: None)
    try:
        attrs = aws.sqs.get_queue_attributes(QueueUrl=queue["queue_url"], AttributeNames=["All"])["Attributes"]
        assert attrs["MessageRetentionPeriod"] == "60"
        # WHEN a matching notification is published and nobody reads it for longer than that
        aws.sns.publish(TopicArn=topic_arn, Message='{"icao24":"3c6444"}', MessageAttributes={
            "origin_country": {"DataType": "String", "StringValue": "Germany"}})
        depth = lambda: int(aws.sqs.get_queue_attributes(  # noqa: E731
            QueueUrl=queue["queue_url"], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"])
        assert depth() == 1
        time.sleep(62)
        # THEN it is gone: the queue holds nothing and a subscriber receives nothing
        assert depth() == 0
        assert aws.sqs.receive_message(QueueUrl=queue["queue_url"], WaitTimeSeconds=1).get("Messages", []) == []
    finally:
        aws.sqs.delete_queue(QueueUrl=queue["queue_url"])
        aws.sns.delete_topic(TopicArn=topic_arn)
