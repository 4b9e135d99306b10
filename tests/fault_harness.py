"""What the fault tests (tests/integration/test_faults.py) share: a stack of their own that they may
break, the pipeline deployed on it under unique names, a subscriber that sees every notification,
an independent recount of what should have arrived, and the result file RELIABILITY.md is made from.

Counting is independent of the pipeline's own counters (infra/demo/observe.py's recount): the run's
Kafka topic is read back and each record put through the function's own filter, giving the exact
notifications that must reach SNS; an SQS queue subscribed without a filter policy receives what
SNS really delivered. missing = expected - delivered, duplicates = delivered - expected (as
multisets), dead letters are read from the run's dead-letter topic.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import boto3
from botocore.config import Config
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from infra.demo import observe

from infra.deploy import aws_resources
from infra.stack.servers import create_topics as create_kafka_topics
from pipeline_common.kafka_client import KafkaSettings
from tracker.settings import native_database_url

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STACK_CLI = [sys.executable, "-m", "infra.stack.servers"]
# Where each fault test leaves its counts for `make reliability`.
RESULTS_DIR = Path(os.environ.get("RELIABILITY_RESULTS_DIR") or ROOT / ".state" / "reliability")
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to `target_port` that can drop every connection and refuse new ones
    (the network going away: cut()), then accept again (listen()). listening=False: connections are
    refused until the first listen() (a part that comes up late)."""

    def __init__(self, target_port: int, listening: bool = True) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        if listening:
            self.listen()

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() first: a bare close() does not wake the thread blocked in accept(), and the
                # kernel would keep the port listening until it returns.
                try:
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --------------------------------------------------------------------------- a stack to break
class IsolatedStack:
    """Kafka + MiniStack on free ports with their own state directory, driven through `python -m infra.stack.servers`
    in subprocesses (its STATE and pid files are fixed at import from STACK_STATE_DIR), so the shared
    stack on 9092/4566 is never touched and only processes started here are ever signalled."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.kafka_port, self.aws_port = free_port(), free_port()
        self.env = {**os.environ, **AWS_TEST_ENV, "STACK_STATE_DIR": str(state_dir),
                    "KAFKA_PORT": str(self.kafka_port), "KAFKA_CONTROLLER_PORT": str(free_port()),
                    "AWS_PORT": str(self.aws_port), "KAFKA_HEAP": "512m",
                    "AWS_ENDPOINT_URL": f"http://localhost:{self.aws_port}",
                    "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{self.kafka_port}",
                    # The fault tests need no PostgreSQL: with DATABASE_URL set, `up` starts none (it would
                    # otherwise try the shared stack's POSTGRES_PORT, which is taken).
                    "DATABASE_URL": os.environ.get("DATABASE_URL") or native_database_url(
                        int(os.environ.get("POSTGRES_PORT") or 5432))}
        self.bootstrap = f"localhost:{self.kafka_port}"
        self.endpoint = f"http://localhost:{self.aws_port}"

    def _run(self, *args: str, timeout: float = 240) -> str:
        proc = subprocess.run(STACK_CLI + list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"servers.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down", timeout=120)

    def stop(self, part: str, kill: bool = False) -> None:
        self._run("stop-part", part, *(["--kill"] if kill else []), timeout=60)

    def start(self, part: str) -> None:
        self._run("start-part", part)

    def kill_now(self, part: str) -> None:
        """SIGKILL a part's process group from this process, at once (no interpreter start-up in between,
        which matters when the moment is chosen), then let servers.py forget its pid file."""
        pid = int((self.state_dir / f"{part}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        self._run("stop-part", part, "--kill", timeout=60)

    def pause(self, part: str) -> None:
        self._run("pause-part", part, timeout=30)

    def resume(self, part: str) -> None:
        self._run("resume-part", part, timeout=30)

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap)


# --------------------------------------------------------------------------- the pipeline under test
@dataclass
class Pipeline:
    """One run's Kafka topics, consumer group and AWS resources, all named after `run_id`."""
    stack: IsolatedStack
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 3

    def __post_init__(self) -> None:
        self.topic = f"fault-{self.run_id}"
        self.dlq = f"fault-{self.run_id}-dlq"
        self.group = f"fault-{self.run_id}"
        self.settings = aws_resources.AwsResourceSettings.from_env(
            function_name=f"fault-{self.run_id}", topic_name=f"fault-{self.run_id}",
            queue_name=f"fault-{self.run_id}-demo", metrics_namespace="FlightPipelineFaults")
        self.queue_name = f"fault-{self.run_id}-all"
        self.subscriber: Subscriber | None = None
        self._cleanups: list = []

    def on_close(self, cleanup) -> None:
        """Run `cleanup` when the test ends, pass or fail (stop a producer or trigger thread left running)."""
        self._cleanups.append(cleanup)

    def create_topics(self) -> None:
        create_kafka_topics({"bootstrap_servers": self.stack.bootstrap},
                            [NewTopic(self.topic, self.partitions, 1), NewTopic(self.dlq, 1, 1)])

    def deploy(self) -> None:
        """Topic, subscriber (before the function exists, so nothing it publishes goes unseen), role, function.
        Idempotent: a restarted MiniStack has forgotten everything and gets the same names again."""
        clients = aws_resources.AwsClients()
        topic_arn = aws_resources.create_sns_topic(self.settings, clients, say=_quiet)
        # raw delivery and no filter policy: it receives every notification
        queue_url = aws_resources.subscribe_queue(topic_arn, self.queue_name, clients)["queue_url"]
        if self.subscriber is None:
            self.subscriber = Subscriber(queue_url)
            self.subscriber.start()
        else:
            self.subscriber.queue_url = queue_url
        aws_resources.deploy_lambda(topic_arn, None, self.settings, clients, say=_quiet)

    def trigger_env(self, **extra: str) -> dict:
        """Environment for `python -m trigger` against this run."""
        env = {**self.stack.env, "KAFKA_TOPIC": self.topic, "KAFKA_DLQ_TOPIC": self.dlq,
               "TRIGGER_FUNCTION_NAME": self.settings.function_name, "TRIGGER_GROUP_ID": self.group,
               "TRIGGER_MAXIMUM_BATCHING_WINDOW_S": "0.2", "TRIGGER_STATUS_INTERVAL_S": "2",
               "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT / "src")}
        env.update(extra)
        return env

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - the next cleanup must run too
                logger.warning("cleanup %r failed", cleanup, exc_info=True)
        if self.subscriber is not None:
            self.subscriber.stop()


def _quiet(_message: str) -> None:
    return None


class Subscriber:
    """Drains the subscriber queue continuously in background threads and keeps every notification.

    A message received twice by this subscriber (its receive answer lost, e.g. while the endpoint was
    paused) has the same SQS MessageId and is counted once: duplicates reported are the pipeline's.
    """

    def __init__(self, queue_url: str, threads: int = 3) -> None:
        self.queue_url = queue_url
        self._sqs = boto3.client("sqs", config=Config(connect_timeout=3, read_timeout=10,
                                                       retries={"max_attempts": 1},
                                                       max_pool_connections=threads + 2))
        self._bodies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._drain, name=f"subscriber-{i}", daemon=True)
                         for i in range(threads)]
        self.last_arrival = time.monotonic()
        self.receive_errors = 0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                     WaitTimeSeconds=1, VisibilityTimeout=5).get("Messages", [])
                if messages:
                    with self._lock:
                        for m in messages:
                            self._bodies.setdefault(m["MessageId"], m["Body"])
                        self.last_arrival = time.monotonic()
                    self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            except Exception as exc:  # noqa: BLE001 - the endpoint may be down on purpose; keep draining
                self.receive_errors += 1
                logger.debug("subscriber receive failed: %s", exc)
                self._stop.wait(0.5)

    def count(self) -> int:
        with self._lock:
            return len(self._bodies)

    def notifications(self) -> Counter:
        with self._lock:
            bodies = list(self._bodies.values())
        return Counter(observe.canonical(json.loads(b)) for b in bodies)

    def wait_quiet(self, quiet_s: float = 3.0, timeout_s: float = 90.0) -> None:
        """Until nothing arrived for quiet_s and the queue holds nothing, not even a message whose receive
        answer was lost (it becomes visible again after the 5 s visibility timeout)."""
        def empty() -> bool:
            attrs = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return (time.monotonic() - self.last_arrival >= quiet_s
                    and attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0")
        wait_until(empty, timeout_s, f"the subscriber queue {self.queue_url} to be drained", every_s=0.5)


# --------------------------------------------------------------------------- counting
def dead_letters(dlq: str, kafka: KafkaSettings) -> list[dict]:
    """Every on-failure document in the run's dead-letter topic."""
    return [json.loads(r.value) for r in observe.read_topic(kafka, dlq, timeout_s=60)]


def committed_lag(bootstrap: str, topic: str, group: str) -> int | None:
    """End offsets minus the group's committed offsets, summed (None before the group committed)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        committed = admin.list_group_offsets(group).get(group) or {}
    except KafkaError as exc:  # no coordinator for a group that never committed, or a broker restarting
        logger.debug("offsets of group %s unavailable: %s", group, exc)
        return None
    finally:
        admin.close()
    if not committed:
        return None
    ends = observe.end_offsets(KafkaSettings(bootstrap_servers=bootstrap), topic)
    return sum(end - (committed[tp].offset if (tp := TopicPartition(topic, p)) in committed else 0)
               for p, end in ends.items())


def wait_until(condition, timeout_s: float, what: str, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - a broker coming back may refuse a probe or two
            logger.debug("while waiting for %s: %s", what, exc)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def wait_drained(pipeline: Pipeline, timeout_s: float = 240) -> None:
    """Every record of the run committed by the trigger's group, and the subscriber quiet."""
    wait_until(lambda: committed_lag(pipeline.stack.bootstrap, pipeline.topic, pipeline.group) == 0,
               timeout_s, f"group {pipeline.group} to commit every record of {pipeline.topic}", every_s=1.0)
    pipeline.subscriber.wait_quiet()


# --------------------------------------------------------------------------- results
def reconcile(fault: str, title: str, pipeline: Pipeline, produced: int, started: float, **details) -> dict:
    """Counts for one fault run, written to RESULTS_DIR/<fault>.json before anything is asserted."""
    kafka = pipeline.stack.kafka
    expected = observe.recount(observe.read_topic(kafka, pipeline.topic))
    rejected = {**expected.invalid, **expected.too_large}  # what the function must report failed
    delivered = pipeline.subscriber.notifications()
    missing = expected.notifications - delivered
    extra = delivered - expected.notifications
    unexpected = [n for n in extra if n not in expected.notifications]
    letters = dead_letters(pipeline.dlq, kafka)
    result = {
        "fault": fault,
        "title": title,
        "run_id": pipeline.run_id,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.monotonic() - started, 1),
        "produced": produced,
        "in_kafka": expected.records,
        "in_air": sum(expected.notifications.values()),
        "filtered": expected.filtered,
        "invalid": len(rejected),
        "delivered": sum((expected.notifications & delivered).values()),
        "missing": sum(missing.values()),
        "duplicates": sum(extra.values()) - len(unexpected),
        "unexpected": len(unexpected),
        "dead_lettered": len(letters),
        "dead_lettered_valid": sum(1 for d in letters if (d["errorContext"]["partition"],
                                                           d["errorContext"]["offset"]) not in rejected),
        # The offset-based count of the dead-letter topic, as a cross-check of the documents read.
        "dlq_count_agrees": observe.records_since(kafka, pipeline.dlq, 0) == len(letters),
        "details": details,
        "examples_missing": list(missing)[:3],
    }
    result["passed"] = (result["missing"] == 0 and result["unexpected"] == 0 and result["dead_lettered_valid"] == 0
                        and result["dlq_count_agrees"] and result["produced"] + details.get("injected", 0)
                        == result["in_kafka"])
    write_result(result)
    result["dead_letter_docs"] = letters
    result["invalid_records"] = rejected
    return result


def write_result(result: dict) -> Path:
    """The latest run of a fault (<fault>.json) and one line per run in history.jsonl."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{result['fault']}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    with open(RESULTS_DIR / "history.jsonl", "a") as history:
        history.write(json.dumps({k: result.get(k) for k in ("fault", "run_id", "finished_at", "passed", "produced",
                                                              "missing", "duplicates", "dead_lettered")}) + "\n")
    return path
