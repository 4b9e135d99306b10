"""The live alerts feed of the map: a queue of the tracker's own subscribed to FlightAlerts (raw
delivery, short retention), long-polled by a background thread into a bounded buffer of recent
alerts, deduplicated by alert_id (SNS and SQS deliver at least once; the function may re-send).

Optional by design: when the AWS endpoint or the topic is absent the feed says why (``status()``),
retries with backoff, and the rest of the tracker serves as usual.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from datetime import datetime
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from flight_domain.alert_rules import alert_body
from pipeline_common.aws_clients import AwsClients, subscribe_queue
from pipeline_common.backoff import backoff_delay

from .alerts_settings import TrackerAlertsSettings

logger = logging.getLogger(__name__)

WAIT_TIME_S = 10  # SQS long poll; also how long stop() may take to be noticed by the thread


def aws_clients() -> AwsClients:
    """Clients that give up quickly: an unreachable endpoint must not hold a request or the feed for a
    minute. The read timeout is above the long poll."""
    config = Config(connect_timeout=3, read_timeout=WAIT_TIME_S + 10,
                    retries={"mode": "standard", "total_max_attempts": 2})

    class _Session(boto3.session.Session):
        def client(self, *args, **kwargs):
            kwargs.setdefault("config", config)
            return super().client(*args, **kwargs)

    return AwsClients(_Session())


def _alert_time(body: dict, default: float) -> float:
    text = body.get("time_position")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return default


class AlertBuffer:
    """The most recent `keep` alerts, each once (by alert_id), numbered in arrival order so a
    WebSocket can ask for the ones it has not sent yet."""

    def __init__(self, keep: int, clock: Callable[[], float] = time.time) -> None:
        self._alerts: deque[tuple[int, float, dict]] = deque(maxlen=keep)  # (seq, alert time, body)
        # Ids remembered beyond the buffer, so a late redelivery of an alert already scrolled out is
        # not shown again; bounded too.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_max = keep * 10
        self._seq = 0
        self._lock = threading.Lock()
        self._clock = clock
        self.duplicates = 0

    @property
    def seq(self) -> int:
        return self._seq

    def add(self, body: dict) -> bool:
        """Keep the alert; False when its alert_id was already seen (a duplicate)."""
        alert_id = str(body.get("alert_id") or "")
        with self._lock:
            if alert_id and alert_id in self._seen:
                self.duplicates += 1
                return False
            if alert_id:
                self._seen[alert_id] = None
                if len(self._seen) > self._seen_max:
                    self._seen.popitem(last=False)
            self._seq += 1
            self._alerts.append((self._seq, _alert_time(body, self._clock()), body))
            return True

    def since_seq(self, seq: int) -> tuple[int, list[dict]]:
        """Alerts that arrived after `seq` (oldest first) and the sequence number to ask from next."""
        with self._lock:
            return self._seq, [body for s, _t, body in self._alerts if s > seq]

    def recent(self, since: float | None = None, types: set[str] | None = None, limit: int | None = None) -> list[dict]:
        """Newest first; `since` compares with the alert's position time (epoch seconds)."""
        with self._lock:
            rows = list(self._alerts)
        out = [body for _s, t, body in reversed(rows)
               if (since is None or t >= since) and (types is None or body.get("alert_type") in types)]
        return out if limit is None else out[:limit]

    def __len__(self) -> int:
        return len(self._alerts)


class FeedUnavailable(RuntimeError):
    """The alerts topic cannot be subscribed to; str(exc) says why."""


def aws_reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__


class AlertFeed:
    """The background thread: find the topic, subscribe the queue, long-poll it into `buffer`."""

    def __init__(self, settings: TrackerAlertsSettings, clients: AwsClients | None = None) -> None:
        self.settings = settings
        self.buffer = AlertBuffer(settings.keep)
        self._clients = clients
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.topic_arn: str | None = None
        self.queue_url: str | None = None
        self.error: str | None = None if settings.feed else "the alerts feed is off (TRACKER_ALERTS_FEED=false)"
        self.received = 0
        self.rejected = 0

    @property
    def clients(self) -> AwsClients:
        if self._clients is None:
            self._clients = aws_clients()
        return self._clients

    def status(self) -> dict:
        return {"enabled": self.settings.feed, "ok": self.queue_url is not None and self.error is None,
                "error": self.error, "topic": self.settings.topic_name, "topic_arn": self.topic_arn,
                "queue": self.settings.queue_name, "received": self.received,
                "duplicates": self.buffer.duplicates, "rejected": self.rejected}

    def start(self) -> None:
        if not self.settings.feed or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tracker-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Ask the thread to stop; it notices within one long poll (it is a daemon: nothing waits)."""
        self._stop.set()
        if self._thread is not None and timeout:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self.queue_url is None:
                    self._subscribe()
                self._poll_once()
                attempt = 0
            except (ClientError, BotoCoreError, FeedUnavailable) as exc:
                attempt += 1
                reason = aws_reason(exc)
                if "NonExistentQueue" in reason or "QueueDoesNotExist" in reason:
                    self.queue_url = None  # the endpoint was restarted: subscribe again
                if reason != self.error:
                    logger.warning("alerts feed unavailable (%s): the map shows no new alerts until it is back",
                                   reason)
                self.error = reason
                self._stop.wait(backoff_delay(attempt, 1.0, self.settings.retry_s))
            except Exception:  # noqa: BLE001 - the feed must not die silently; it retries
                logger.exception("alerts feed failed; retrying")
                self.error = "internal error (see the tracker's log)"
                attempt += 1
                self._stop.wait(backoff_delay(attempt, 1.0, self.settings.retry_s))

    def _find_topic(self) -> str:
        name = self.settings.topic_name
        wanted = {name, name if name.endswith(".fifo") else f"{name}.fifo"}
        for page in self.clients.sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                if topic["TopicArn"].rsplit(":", 1)[-1] in wanted:
                    return topic["TopicArn"]
        raise FeedUnavailable(f"no SNS topic {name} (deploy it with make deploy-resources)")

    def _subscribe(self) -> None:
        s = self.settings
        topic_arn = self._find_topic()
        fifo = topic_arn.endswith(".fifo")
        queue = f"{s.queue_name}.fifo" if fifo and not s.queue_name.endswith(".fifo") else s.queue_name
        # subscribe_queue creates a plain queue: a FIFO topic needs a FIFO queue, made first.
        url = self.clients.sqs.create_queue(QueueName=queue, **({"Attributes": {"FifoQueue": "true"}} if fifo else {}))[
            "QueueUrl"]
        self.clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={
            "MessageRetentionPeriod": str(s.queue_retention_s)})
        subscribed = subscribe_queue(topic_arn, queue, self.clients)  # raw delivery, every alert
        self.topic_arn, self.queue_url, self.error = topic_arn, subscribed["queue_url"], None
        logger.info("alerts feed: queue %s subscribed to %s (raw delivery, kept %d s)", queue, topic_arn,
                    s.queue_retention_s)

    def _poll_once(self, wait_s: int = WAIT_TIME_S) -> None:
        messages = self.clients.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=wait_s).get("Messages", [])
        self.error = None
        for message in messages:
            try:
                body = alert_body(message["Body"])
            except ValueError as exc:
                # Our own queue: a message that is not an alert is logged and dropped, never retried forever.
                self.rejected += 1
                logger.warning("alerts feed: message %s on %s is not an alert (%s); dropped",
                               message.get("MessageId"), self.settings.queue_name, exc)
                continue
            self.received += 1
            self.buffer.add(body)
        if messages:
            self.clients.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
