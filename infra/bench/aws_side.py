"""The benchmark's own AWS resources: SNS topics, the function, and subscriber queues, all uniquely named.

Every subscriber is an SQS queue with RawMessageDelivery=true and NO filter policy, so it receives
every notification with its message attributes (origin_country, kafka_timestamp_ms). MiniStack
delivers SNS -> SQS synchronously inside the Publish call, so SQS's SentTimestamp is the moment
SNS accepted the message; producer-to-subscriber latency is SentTimestamp - kafka_timestamp_ms.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.deploy import aws_resources
from infra.progress import Say

ROOT = Path(__file__).resolve().parent.parent.parent
logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class Subscriber:
    name: str
    queue_url: str
    queue_arn: str
    topic_arn: str


@dataclass(frozen=True)
class Delivery:
    """One notification as the subscriber got it."""
    sent_ms: int               # SQS SentTimestamp: when SNS delivered it
    kafka_ms: int | None       # the Kafka record's timestamp (the producer's send time)


class BenchAws:
    """Creates what a benchmark needs and remembers it, so `cleanup()` deletes exactly that."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.clients = aws_resources.AwsClients()
        self._topics: list[str] = []
        self._queues: list[str] = []
        self._functions: list[aws_resources.AwsResourceSettings] = []
        self._fast = {}

    def client(self, service: str):
        """A client for bulk calls from several threads: a connection per thread, few retries."""
        if service not in self._fast:
            import boto3
            self._fast[service] = boto3.session.Session().client(service, config=Config(
                max_pool_connections=32, retries={"mode": "standard", "total_max_attempts": 3},
                connect_timeout=5, read_timeout=60))
        return self._fast[service]

    def warm_up(self, function_name: str, concurrency: int) -> None:
        """Invoke the function `concurrency` times at once with an empty ESM event, so the endpoint has
        that many warm workers before anything is measured (cold starts are not what is benchmarked)."""
        lam = self.client("lambda")
        event = json.dumps({"eventSource": "SelfManagedKafka", "bootstrapServers": "", "records": {}}).encode()
        pool = [threading.Thread(target=lam.invoke, kwargs={"FunctionName": function_name, "Payload": event},
                                 name=f"bench-warm-{i}") for i in range(concurrency)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=120)

    # -- creation --------------------------------------------------------------------------
    def topic(self, name: str) -> str:
        arn = self.clients.sns.create_topic(Name=name)["TopicArn"]
        self._topics.append(arn)
        return arn

    def subscriber(self, topic_arn: str, name: str) -> Subscriber:
        queue = aws_resources.subscribe_queue(topic_arn, name, self.clients)
        self._queues.append(queue["queue_url"])
        return Subscriber(name, queue["queue_url"], queue["queue_arn"], topic_arn)

    def function(self, name: str, env: dict | None = None) -> tuple[aws_resources.AwsResourceSettings, str]:
        """Deploy the project's function as `name` with its own topic `name`; returns (settings, topic ARN)."""
        settings = aws_resources.AwsResourceSettings.from_env(
            function_name=name, topic_name=name, queue_name=name, role_name=f"{name}-role")
        # LOG_LEVEL=INFO, the function's documented default, set explicitly: MiniStack's workers inherit
        # MiniStack's own LOG_LEVEL (WARNING from `make run`), and a function that writes nothing to
        # stderr makes MiniStack wait 50 ms for log output after every invocation.
        settings = replace(settings, function_env={"LOG_LEVEL": "INFO", **settings.function_env, **(env or {})})
        self._functions.append(settings)
        deployed = aws_resources.deploy_lambda(settings=settings, clients=self.clients, say=lambda _m: None)
        self._topics.append(deployed["topic_arn"])
        return settings, deployed["topic_arn"]

    # -- reading ---------------------------------------------------------------------------
    def depth(self, queue_url: str) -> int:
        attrs = self.clients.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))

    def drain(self, queue_url: str, threads: int = 4, progress: Say | None = None) -> list[Delivery]:
        """Receive and delete everything in the queue; returns each message's timestamps.

        Called after the pipeline has finished, when every notification is already in the queue.
        """
        sqs = self.client("sqs")
        out: list[Delivery] = []
        lock = threading.Lock()
        errors: list[Exception] = []

        def worker() -> None:
            while True:
                try:
                    messages = sqs.receive_message(
                        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0,
                        AttributeNames=["SentTimestamp"], MessageAttributeNames=["kafka_timestamp_ms"],
                    ).get("Messages", [])
                    if not messages:
                        return
                    batch = []
                    for m in messages:
                        attr = (m.get("MessageAttributes") or {}).get("kafka_timestamp_ms") or {}
                        kafka_ms = int(attr["StringValue"]) if attr.get("StringValue") else None
                        batch.append(Delivery(int(m["Attributes"]["SentTimestamp"]), kafka_ms))
                    sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                except (BotoCoreError, ClientError) as exc:
                    errors.append(exc)
                    return
                with lock:
                    out.extend(batch)

        last_report = time.monotonic()
        while True:
            pool = [threading.Thread(target=worker, name=f"bench-drain-{i}", daemon=True) for i in range(threads)]
            for t in pool:
                t.start()
            while any(t.is_alive() for t in pool):
                for t in pool:
                    t.join(timeout=1)
                if progress and time.monotonic() - last_report >= 5:
                    progress(f"draining subscriber queue: {len(out):,} received")
                    last_report = time.monotonic()
            if errors:
                raise RuntimeError(f"draining {queue_url} failed: {errors[0]}")
            if self.depth(queue_url) == 0:
                return out

    # -- cleanup ---------------------------------------------------------------------------
    def purge_quietly(self, queue_url: str) -> None:
        try:
            self.clients.sqs.purge_queue(QueueUrl=queue_url)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not purge %s: %s", queue_url, exc)

    def cleanup(self) -> None:
        """Delete every function (and its role), queue and topic this run created; never raises."""
        for settings in self._functions:
            try:
                aws_resources.destroy(settings, self.clients, say=lambda _m: None)
            except (BotoCoreError, ClientError) as exc:
                self.say(f"warning: could not delete function {settings.function_name}: {exc}")
        for url in self._queues:
            try:
                self.clients.sqs.delete_queue(QueueUrl=url)
            except (BotoCoreError, ClientError):
                pass  # already deleted with its function
        for arn in self._topics:
            try:
                self.clients.sns.delete_topic(TopicArn=arn)
            except (BotoCoreError, ClientError):
                pass
        self._functions.clear()
        self._queues.clear()
        self._topics.clear()
