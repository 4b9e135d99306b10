"""One soak sample every 10 s: Kafka in/out and lag per consumer group, memory and CPU of every
process of the session, SQS queue depths. Read from outside (Kafka's offsets, /proc, the AWS API),
so nothing is taken from the components' own counters.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from infra.bench.procstat import cpu_seconds, machine_cpu
from pipeline_common.kafka_client import KafkaSettings

logger = logging.getLogger(__name__)

PidSource = Callable[[], Iterable[int]]


@dataclass
class Sample:
    t: float                                   # seconds since the soak's parts started
    produced: int                              # sum of the topic's end offsets since the start
    committed: dict[str, int] = field(default_factory=dict)   # per group, records since the start
    lag: dict[str, int] = field(default_factory=dict)         # per group: end - committed, summed
    memory_mb: dict[str, float] = field(default_factory=dict)  # per process (group)
    cpu_s: dict[str, float] = field(default_factory=dict)      # cumulative CPU seconds per process
    queues: dict[str, int] = field(default_factory=dict)       # visible + in flight, per SQS queue
    load1: float = 0.0                                         # the machine's 1-minute load average
    machine_cpu_s: dict[str, float] = field(default_factory=dict)  # the machine's busy/steal/total since boot

    def as_dict(self) -> dict:
        return {"t": round(self.t, 1), "produced": self.produced, "committed": self.committed, "lag": self.lag,
                "memory_mb": {k: round(v, 1) for k, v in self.memory_mb.items()},
                "cpu_s": {k: round(v, 2) for k, v in self.cpu_s.items()}, "queues": self.queues,
                "load1": round(self.load1, 2),
                "machine_cpu_s": {k: round(v, 2) for k, v in self.machine_cpu_s.items()}}


# ---------------------------------------------------------------- /proc
def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _anonymous_kb(pid: int) -> int | None:
    """The process's share of anonymous memory (Pss_Anon: its heap and stacks; a page shared copy-on-write
    with a parent or sibling counted once over the group), or its private memory (USS) on kernels before
    5.13. A sum over PostgreSQL's backends or MiniStack's function workers then counts no page twice and
    leaves out shared memory and files: PostgreSQL's shared buffer cache fills up to shared_buffers and
    stays there, whichever backends touch its pages."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    fields = {line.split(":")[0]: int(line.split()[1]) for line in lines[1:] if line.endswith("kB")}
    if "Pss_Anon" in fields:
        return fields["Pss_Anon"]
    private = [fields[k] for k in ("Private_Clean", "Private_Dirty") if k in fields]
    return sum(private) if private else None


def memory_mb(pids: list[int], group: bool = False) -> float | None:
    """Resident memory of one process (VmRSS), or the anonymous memory summed over a group of processes
    (however many of them run at the moment); None if all are gone."""
    if not group and len(pids) == 1:
        kb = _status_kb(pids[0], "VmRSS")
        return None if kb is None else kb / 1024
    values = [kb for kb in (_anonymous_kb(pid) or _status_kb(pid, "VmRSS") for pid in pids) if kb is not None]
    return sum(values) / 1024 if values else None


def children_of(parent: int) -> list[int]:
    """Direct children of a process (MiniStack's function workers, PostgreSQL's backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------- the sampler
class Sampler:
    """Takes samples of the topic, its consumer groups, the processes and the queues."""

    def __init__(self, kafka: KafkaSettings, topic: str, processes: dict[str, PidSource], sqs=None) -> None:
        self.topic = topic
        self.processes = processes
        self.sqs = sqs
        self._consumer = KafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False, group_id=None)
        self._admin = KafkaAdminClient(**kafka.client_kwargs(), client_id="flight-soak")
        self._partitions = [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        self._start = self._ends()
        self.groups: set[str] = set()
        self._cpu_base: dict[int, float] = {}
        self._queue_urls: list[str] = []
        self.started = time.monotonic()

    @property
    def start_offsets(self) -> dict[int, int]:
        """{partition: the topic's end offset when the sampler started}: where the run's records begin."""
        return {tp.partition: offset for tp, offset in self._start.items()}

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def _ends(self) -> dict[TopicPartition, int]:
        return dict(self._consumer.end_offsets(self._partitions)) if self._partitions else {}

    def _discover_groups(self) -> None:
        """Every consumer group with offsets on the topic: the soak runs on its own fresh stack, so
        these are the session's trigger(s), tracker and alerts mappings, whatever exists."""
        try:
            listed = self._admin.list_groups()
        except KafkaError as exc:
            logger.debug("list_groups failed: %s", exc)
            return
        for group in listed:
            name = group.get("group_id") if isinstance(group, dict) else getattr(group, "group_id", group[0])
            if name and name not in self.groups:
                offsets = self._group_offsets(name)
                if offsets:
                    self.groups.add(name)

    def _group_offsets(self, group: str) -> dict[TopicPartition, int]:
        try:
            found = self._admin.list_group_offsets({group: None}).get(group) or {}
        except KafkaError as exc:
            logger.debug("offsets of %s unavailable: %s", group, exc)
            return {}
        return {tp: meta.offset for tp, meta in found.items() if tp.topic == self.topic and meta.offset >= 0}

    def _queues(self) -> dict[str, int]:
        if self.sqs is None:
            return {}
        depths = {}
        try:
            if not self._queue_urls:
                self._queue_urls = self.sqs.list_queues().get("QueueUrls", [])
            for url in self._queue_urls:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                depths[url.rsplit("/", 1)[-1]] = sum(int(v) for v in attrs.values())
        except (BotoCoreError, ClientError) as exc:
            logger.debug("queue depths unavailable: %s", exc)
            self._queue_urls = []
        return depths

    def sample(self) -> Sample:
        now = time.monotonic()
        ends = self._ends()
        produced = sum(ends[tp] - self._start.get(tp, 0) for tp in ends)
        self._discover_groups()
        sample = Sample(now - self.started, produced)
        for group in sorted(self.groups):
            offsets = self._group_offsets(group)
            sample.committed[group] = sum(max(0, offsets.get(tp, self._start.get(tp, 0)) - self._start.get(tp, 0))
                                          for tp in ends)
            sample.lag[group] = sum(max(0, end - offsets.get(tp, self._start.get(tp, 0))) for tp, end in ends.items())
        for name, source in self.processes.items():
            try:
                pids = [pid for pid in source() if pid]
            except OSError:
                pids = []
            if not pids:
                continue
            rss = memory_mb(pids, group=getattr(source, "group", False))
            if rss is not None:
                sample.memory_mb[name] = rss
            sample.cpu_s[name] = self._cpu(pids)
        sample.queues = self._queues()
        sample.load1 = os.getloadavg()[0]
        sample.machine_cpu_s = machine_cpu()
        return sample

    def _cpu(self, pids: list[int]) -> float:
        """CPU seconds of these processes since the first sample that saw each of them."""
        total = 0.0
        for pid in pids:
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            base = self._cpu_base.setdefault(pid, cpu)
            total += cpu - base
        return total


def pid_file_source(read_pid: Callable[[], int | None]) -> PidSource:
    return lambda: [pid] if (pid := read_pid()) else []


def with_children(read_pid: Callable[[], int | None]) -> PidSource:
    def source() -> list[int]:
        pid = read_pid()
        return [pid, *children_of(pid)] if pid else []
    source.group = True  # measured as a group (memory_mb)
    return source


def children_source(read_pid: Callable[[], int | None]) -> PidSource:
    def source() -> list[int]:
        pid = read_pid()
        return children_of(pid) if pid else []
    source.group = True
    return source
