"""One benchmark run's shared state: names, the stack's processes, child processes, progress output."""
from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.stack import servers as stack
from infra.bench.aws_side import BenchAws
from infra.bench.kafka_load import GroupProgress, create_topic, delete_groups, delete_topics
from infra.bench.procstat import Child, CpuMeter, pids_matching
from infra.progress import timed_printer
from pipeline_common.kafka_client import KafkaSettings

ROOT = Path(__file__).resolve().parent.parent.parent
STATE_DIR = ROOT / ".state" / "bench"


@dataclass
class Session:
    """Everything the sections share. Names carry the run id, so parallel runs and tests never collide."""
    bootstrap: str
    endpoint: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    quiet: bool = False
    log_dir: Path = STATE_DIR / "logs"
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.kafka = KafkaSettings.from_env(bootstrap_servers=self.bootstrap)
        self._progress = timed_printer("bench", self.started)
        self.aws = BenchAws(self.say)
        self._names: dict[tuple[str, str], int] = {}
        self._topics: list[str] = []
        self._groups: list[str] = []
        self._children: list[Child] = []
        self.log_dir = self.log_dir / self.run_id

    # -- output ------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        if not self.quiet:
            self._progress(message)

    def name(self, what: str, kind: str = "") -> str:
        """A name of this run; asking twice for the same kind of thing and `what` gives a new one (a step
        run again), while a topic and its group, or a function and its queue, may share one."""
        name = f"bench-{self.run_id}-{what}"
        count = self._names.get((kind, name), 0)
        self._names[(kind, name)] = count + 1
        return name if count == 0 else f"{name}-{count + 1}"

    # -- Kafka topics ------------------------------------------------------------------------
    def topic(self, what: str, partitions: int) -> str:
        name = self.name(what, "topic")
        create_topic(self.kafka, name, partitions)
        self._topics.append(name)
        return name

    def group(self, what: str) -> str:
        name = self.name(what, "group")
        self._groups.append(name)
        return name

    # -- processes ---------------------------------------------------------------------------
    def child_env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1")),
            "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
        })
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], **env: str) -> Child:
        log, n = self.log_dir / f"{name}.log", 1
        while log.exists():
            n += 1
            log = self.log_dir / f"{name}-{n}.log"
        child = Child(name, argv, self.child_env(**env), log, cwd=ROOT)
        self._children.append(child)
        return child

    def trigger(self, name: str, topic: str, group: str, function: str, *args: str, **env: str) -> Child:
        """`python -m trigger` on `topic` for `function`, as a subprocess (no dead-letter topic: the
        benchmark's records are all valid, and a failure shows up as a missing notification)."""
        argv = [sys.executable, "-m", "trigger", "--topic", topic, "--group-id", group, "--function-name", function,
                "--dlq-topic", "none", "--status-interval-s", "2", *args]
        return self.spawn(name, argv, **env)

    def joined_trigger(self, name: str, topic: str, group: str, function: str, progress: GroupProgress,
                       *args: str, join_timeout_s: float = 15.0, **env: str) -> Child:
        """A trigger whose group has joined and committed its start offsets (progress.joined).

        kafka-python can complete a group join with no partitions when the topic's metadata is not
        yet complete, and then wait for its next metadata refresh (5 minutes); such a trigger is
        replaced once (noted in the trigger's log)."""
        for attempt in (1, 2, 3):
            child = self.trigger(name, topic, group, function, *args, **env)
            deadline = time.monotonic() + join_timeout_s
            while not progress.joined and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if progress.joined:
                return child
            self.say(f"  the trigger got no partitions (attempt {attempt}); starting it again")
            child.stop(timeout=15)
            time.sleep(1.0)
        raise RuntimeError(f"the trigger did not join group {group}:\n{child.log_tail()}")

    def producer(self, name: str, topic: str, *args: str, **env: str) -> Child:
        argv = [sys.executable, "-m", "producer", "--source", "synthetic", "--topic", topic, *args]
        return self.spawn(name, argv, **env)

    def stack_pids(self) -> dict:
        """Pid sources for the stack's own processes (from `make run`'s pid files)."""
        def one(name: str):
            return lambda: [pid] if (pid := stack._read_pid(name)) else []
        return {"MiniStack": one("ministack"), "Kafka broker": one("kafka")}

    def meter(self, function: str | None = None, **children: Child) -> CpuMeter:
        groups: dict = dict(self.stack_pids())
        if function:
            fragment = f"ministack-lambda-{function}-"
            groups["function workers"] = lambda: pids_matching(fragment)
        groups.update(children)
        groups["bench harness"] = lambda: [os.getpid()]
        return CpuMeter(groups).start()

    # -- cleanup -----------------------------------------------------------------------------
    def cleanup(self) -> None:
        for child in self._children:
            if child.returncode is None:
                child.stop(timeout=10)
        delete_groups(self.kafka, self._groups)
        delete_topics(self.kafka, self._topics)
        self._groups.clear()
        self._topics.clear()
        self.aws.cleanup()


# -- what the children said -------------------------------------------------------------------
def json_log(path: Path) -> list[dict]:
    """The JSON log lines a child wrote (LOG_FORMAT=json); other lines are skipped."""
    lines = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return lines
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


_TRIGGER_STOPPED = re.compile(r"trigger stopped: (\d+) consumed, (\d+) succeeded, (\d+) dead-lettered, "
                              r"(\d+) committed, (\d+) invocations")


def trigger_summary(child: Child) -> dict:
    """Counts from the trigger's last line, and its last status line's invoke latency."""
    summary: dict = {}
    for line in json_log(child.log_path):
        msg = line.get("msg", "")
        if msg.startswith("status:"):
            summary.update(invoke_p50_ms=line.get("invoke_p50_ms"), invoke_p99_ms=line.get("invoke_p99_ms"),
                           retries=line.get("retries"))
        match = _TRIGGER_STOPPED.match(msg)
        if match:
            summary.update(dict(zip(("consumed", "succeeded", "dead_lettered", "committed", "invocations"),
                                    map(int, match.groups()))))
    return summary


def producer_summary(child: Child) -> dict:
    for line in reversed(json_log(child.log_path)):
        if isinstance(line.get("stats"), dict):
            return line["stats"]
    return {}
