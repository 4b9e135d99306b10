"""`make notifications` and `make alerts` on the real AWS endpoint: every message published to the topic
is received and deleted by the printer, run as a user runs it and stopped with Ctrl-C; its totals line
says how many, and the queue is empty afterwards."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.deploy.aws_resources import AwsClients
from pipeline_common.aws_clients import subscribe_queue

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 1_500


def _publish(clients: AwsClients, topic_arn: str, bodies: list[tuple[str, dict]]) -> None:
    """PublishBatch, 10 entries per call from 4 threads, as the functions publish."""
    def send(chunk):
        entries = [{"Id": str(i), "Message": body, "MessageAttributes": attrs} for i, (body, attrs) in enumerate(chunk)]
        response = clients.sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
        assert not response.get("Failed"), response["Failed"]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [bodies[i:i + 10] for i in range(0, len(bodies), 10)]))


def _depth(clients: AwsClients, queue_url: str) -> int:
    attrs = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def _run_printer(argv: list[str], env: dict, clients: AwsClients, queue_url: str, tmp_path: Path,
                 timeout_s: float = 240) -> tuple[list[str], list[str]]:
    """Start the printer, wait until its queue is empty, Ctrl-C it; (stdout lines, stderr lines)."""
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**os.environ, **env},
                                 stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + timeout_s
            while _depth(clients, queue_url) and time.monotonic() < deadline:
                time.sleep(0.5)
            child.send_signal(signal.SIGINT)
            assert child.wait(60) == 0, err.read_text()
        finally:
            if child.poll() is None:
                child.kill()
    return out.read_text().splitlines(), err.read_text().splitlines()


def _topic_and_queue(clients: AwsClients, name: str, filter_policy: dict | None = None) -> tuple[str, str]:
    topic_arn = clients.sns.create_topic(Name=name)["TopicArn"]
    return topic_arn, subscribe_queue(topic_arn, name, clients, filter_policy)["queue_url"]


def test_notification_printer_receives_and_deletes_every_published_notification(stack, tmp_path):
    # GIVEN 1,500 notifications published to a topic whose demo queue filters on two countries,
    # plus 100 of a third country that the queue never gets
    clients, name = AwsClients(), f"printer-it-{uuid.uuid4().hex[:8]}"
    topic_arn, queue_url = _topic_and_queue(clients, name, {"origin_country": ["Germany", "France"]})
    try:
        wanted = [(json.dumps({"icao24": f"{i:06x}", "origin_country": ["Germany", "France"][i % 2]}),
                   {"origin_country": {"DataType": "String", "StringValue": ["Germany", "France"][i % 2]}})
                  for i in range(MESSAGES)]
        other = [(json.dumps({"icao24": "ffffff", "origin_country": "Spain"}),
                  {"origin_country": {"DataType": "String", "StringValue": "Spain"}})] * 100
        _publish(clients, topic_arn, wanted + other)
        # WHEN `make notifications ARGS=--all` reads the queue until it is empty and is stopped with Ctrl-C
        lines, notes = _run_printer(["-m", "infra.demo.observe", "notifications", "--all"],
                                    {"NOTIFY_QUEUE_NAME": name}, clients, queue_url, tmp_path)
        # THEN every notification was printed once, and its totals line says all were received and deleted
        assert sorted(json.loads(line)["icao24"] for line in lines) == sorted(f"{i:06x}" for i in range(MESSAGES))
        assert notes[-1] == (f"==> {MESSAGES} notification(s) received, {MESSAGES} deleted, {MESSAGES} shown "
                             "(stopped by Ctrl-C)")
        # AND the count `make soak` reads from that line is the same
        assert re.findall(r"(\d+) notification\(s\) received", "\n".join(notes)) == [str(MESSAGES)]
        # AND the queue holds nothing, visible or in flight
        assert _depth(clients, queue_url) == 0
    finally:
        clients.sqs.delete_queue(QueueUrl=queue_url)
        clients.sns.delete_topic(TopicArn=topic_arn)


def test_alerts_printer_counts_what_it_does_not_show_and_leaves_nothing_behind(stack, tmp_path):
    # GIVEN 1,500 alerts of two types in the alerts demo queue
    clients, name = AwsClients(), f"alerts-printer-it-{uuid.uuid4().hex[:8]}"
    topic_arn, queue_url = _topic_and_queue(clients, name)
    try:
        alerts = [(json.dumps({"alert_id": f"a{i}", "alert_type": "EMERGENCY" if i % 3 == 0 else "WATCHLIST",
                               "icao24": f"{i:06x}", "squawk": "7700", "emergency": "general", "watch": "x"}), {})
                  for i in range(MESSAGES)]
        _publish(clients, topic_arn, alerts)
        # WHEN `make alerts ARGS="--type EMERGENCY --lines-per-s 50"` reads it until it is empty
        lines, notes = _run_printer(["-m", "infra.deploy.alerts_resources", "alerts", "--type", "EMERGENCY",
                                     "--lines-per-s", "50"], {"ALERTS_QUEUE_NAME": name}, clients, queue_url,
                                    tmp_path)
        # THEN every alert was received and deleted; only EMERGENCY ones were shown, at most 50 a second,
        # and the ones not shown are counted in the per-second lines
        emergencies = sum(1 for i in range(MESSAGES) if i % 3 == 0)
        totals = re.fullmatch(r"==> (\d+) alert\(s\) received, (\d+) deleted, (\d+) shown \(EMERGENCY only\) "
                              r"\(stopped by Ctrl-C\)", notes[-1])
        assert totals, notes[-1]
        received, deleted, shown = map(int, totals.groups())
        assert (received, deleted) == (MESSAGES, MESSAGES) and shown == len(lines) <= emergencies
        assert all("EMERGENCY" in line for line in lines)
        hidden = sum(int(m) for m in re.findall(r", (\d+) not shown;", "\n".join(notes)))
        assert shown + hidden == emergencies
        assert _depth(clients, queue_url) == 0
    finally:
        clients.sqs.delete_queue(QueueUrl=queue_url)
        clients.sns.delete_topic(TopicArn=topic_arn)
