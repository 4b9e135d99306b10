"""boto3 clients for the running services and the deploy tools alike, and the one way a queue of ours
is subscribed to a topic (the tracker's alerts feed, the demo subscribers, the tests' queues)."""
from __future__ import annotations

import json

import boto3
from botocore.config import Config

# The demo printers receive on 8 threads and delete on 8 more (infra/demo/queue_reader.py): boto3's default
# pool of 10 connections would make a thread open and discard a connection per call. Connections are opened
# only as they are needed.
_CONFIG = {"sqs": Config(max_pool_connections=32)}


class AwsClients:
    """boto3 clients created on first use from one session (so a test can start moto first)."""

    def __init__(self, session: boto3.session.Session | None = None):
        self._session = session
        self._clients: dict[str, object] = {}

    def __getattr__(self, service: str):
        if service.startswith("_"):
            raise AttributeError(service)
        name = "lambda" if service == "lambda_" else service
        if name not in self._clients:
            if self._session is None:
                self._session = boto3.session.Session()
            self._clients[name] = self._session.client(name, config=_CONFIG.get(name))
        return self._clients[name]


def queue_policy(queue_arn: str, topic_arn: str) -> dict:
    """The queue's resource policy: only this topic may send to it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FlightNotificationsToDemoQueue",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }


def subscribe_queue(topic_arn: str, queue_name: str, clients: AwsClients, filter_policy: dict | None = None) -> dict:
    """An SQS queue (created if needed) that the topic may send to, subscribed with raw delivery and,
    if given, a filter policy; an existing subscription gets the attributes again. Idempotent.
    Returns {"queue_url", "queue_arn", "subscription_arn"}."""
    queue_url = clients.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = queue_policy(queue_arn, topic_arn)
    clients.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    attributes = {"RawMessageDelivery": "true"}
    if filter_policy is not None:
        attributes["FilterPolicy"] = json.dumps(filter_policy)
    existing = None
    for page in clients.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                existing = sub["SubscriptionArn"]
    if existing:
        for name, value in attributes.items():
            clients.sns.set_subscription_attributes(SubscriptionArn=existing, AttributeName=name,
                                                    AttributeValue=value)
        subscription_arn = existing
    else:
        subscription_arn = clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                                 Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
    return {"queue_url": queue_url, "queue_arn": queue_arn, "subscription_arn": subscription_arn}
