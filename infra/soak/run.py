"""`make soak`: the typical session for MINUTES on a fresh stack, sampled every 10 s, judged by the gates.

Order: a fresh stack (`make run` in its own state folder), `make deploy-resources`, the session's
parts (their make targets), samples until MINUTES have passed, then the producer stops, the
consumers drain, and every record is reconciled as `make demo` does (the function's filter applied
to the run's records read back from Kafka; the function's metrics; the dead-letter topic; the
subscriber's count; the tracker's rows in PostgreSQL against the distinct positions in Kafka). The
tracker runs its maintenance pass every 2 minutes (--maintenance-interval-s, given to it as
TRACKER_MAINTENANCE_INTERVAL_S; an hour by default), so a soak crosses it many times before its
history is counted. The gates (infra/soak/gates.py) decide the exit code; docs/SOAK.md and its plots
are written either way.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from infra.demo import observe

from infra.deploy import aws_resources
from infra.bench import machine
from infra.bench.session import producer_summary
from infra.progress import printer
from infra.soak import gates, lake_rows, sampler, tracker_rows
from infra.soak.session import ROOT, Part, child_env, discover
from pipeline_common.kafka_client import KafkaSettings

logger = logging.getLogger(__name__)

STACK_PROCESSES = {"kafka": "Kafka broker", "ministack": "MiniStack", "postgres": "PostgreSQL"}
_RECEIVED = re.compile(r"(\d+) notification\(s\) received")


say = printer("[soak]")


@dataclass
class SoakConfig:
    minutes: float = 30.0
    interval_s: float = 10.0
    state_dir: Path = ROOT / ".state" / "soak"
    report: Path = ROOT / "docs" / "SOAK.md"
    results: Path = ROOT / ".state" / "soak-results.json"
    part_args: dict[str, str] = field(default_factory=dict)
    drain_timeout_s: float = 300.0
    # The tracker's retention/partition pass runs hourly by default: the soak runs it this often instead,
    # so that its history is reconciled after many passes (issue 20: it stopped committing after the first).
    maintenance_interval_s: float = 120.0
    # MiniStack's log-stream and datapoint bounds likewise (their defaults are 10-15 minutes): a 10-minute soak
    # judges its memory after the bounds act, not before.
    ministack_retention_s: float = 120.0
    keep_stack: bool = False
    topic: str = "aviation-data"
    dlq_topic: str = "aviation-data-dlq"

    @property
    def duration_s(self) -> float:
        return self.minutes * 60


def _make(target: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    say(f"make {target}")
    result = subprocess.run(["make", "--no-print-directory", target, "ARGS="], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"make {target} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def _pid_reader(path: Path):
    def read() -> int | None:
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None
    return read


def _process_sources(state_dir: Path, parts: list[Part]) -> dict:
    """Every process of the session: the stack's (from its pid files) and the parts."""
    sources: dict = {}
    for pid_file in sorted(state_dir.glob("*.pid")):
        label = STACK_PROCESSES.get(pid_file.stem, pid_file.stem)
        read = _pid_reader(pid_file)
        if pid_file.stem == "ministack":
            sources[label] = sampler.pid_file_source(read)
            sources["function workers"] = sampler.children_source(read)
        elif pid_file.stem == "postgres":
            sources[label] = sampler.with_children(read)  # the postmaster and its backends
        else:
            sources[label] = sampler.pid_file_source(read)
    for part in parts:
        sources[part.name] = part.pids
    return sources


def _progress(s: sampler.Sample, previous: sampler.Sample | None) -> str:
    previous = previous or sampler.Sample(0.0, 0)
    dt = s.t - previous.t
    rate = lambda now, before: (now - before) / dt if dt > 0 else 0.0  # noqa: E731
    parts = [f"in {rate(s.produced, previous.produced):,.0f}/s"]
    for group in s.lag:
        out = rate(s.committed[group], previous.committed.get(group, 0))
        parts.append(f"{group} lag {s.lag[group]:,} out {out:,.0f}/s")
    parts.append(" ".join(f"{k} {v:,.0f}MB" for k, v in s.memory_mb.items()))
    if s.queues:
        parts.append("queues " + " ".join(f"{k}={v:,}" for k, v in s.queues.items()))
    return " | ".join(parts)


def run_soak(cfg: SoakConfig) -> dict:
    state_dir = cfg.state_dir.resolve()
    retention = f"{cfg.ministack_retention_s:.0f}"
    env = child_env(STACK_STATE_DIR=str(state_dir), TRACKER_MAINTENANCE_INTERVAL_S=f"{cfg.maintenance_interval_s:g}",
                    MINISTACK_LOGS_KEEP_S=retention, MINISTACK_METRICS_RAW_S=retention)
    os.environ["STACK_STATE_DIR"] = str(state_dir)
    kafka = KafkaSettings.from_env()
    begun = datetime.now(timezone.utc)
    load_before = machine.load_average()
    say(f"{cfg.minutes:g} min on a fresh stack in {state_dir} (Kafka {kafka.bootstrap_servers}, "
        f"AWS {os.environ.get('AWS_ENDPOINT_URL')}); the tracker's maintenance pass every "
        f"{cfg.maintenance_interval_s:g} s, MiniStack's log and metric bounds {retention} s")
    if state_dir in (ROOT.resolve(), (ROOT / ".state").resolve()):
        raise RuntimeError(f"--state-dir {state_dir} is your own stack's: the soak wipes its folder at start")
    _check_clients_reach_the_soak_stack(kafka)
    _make("stop", env, check=False)      # a stack an earlier soak left running (--keep-stack)
    subprocess.run(["rm", "-rf", str(state_dir)], check=True)
    parts: list[Part] = []
    try:
        _make("run", env)
        _make("deploy-resources", env)
        found = discover(cfg.part_args, env)
        clients = aws_resources.AwsClients()
        settings = aws_resources.AwsResourceSettings.from_env()
        log_dir = state_dir / "logs" / "session"
        since = datetime.now(timezone.utc)
        since_ms = int(since.timestamp() * 1000)
        samples: list[sampler.Sample] = []
        smp = sampler.Sampler(kafka, cfg.topic, {}, clients.sqs)
        for spec, argv in found:
            say(f"starting {spec.name}: {' '.join(argv)}")
            parts.append(Part(spec, argv, env, log_dir))
            if spec.name != "producer":
                time.sleep(2)
        smp.processes = _process_sources(state_dir, parts)
        smp.started = min(p.started for p in parts)
        died: list[str] = []
        previous = None
        end_at = smp.started + cfg.duration_s
        next_at = time.monotonic()
        while time.monotonic() < end_at:
            next_at += cfg.interval_s
            time.sleep(max(0.0, min(next_at, end_at) - time.monotonic()))
            s = smp.sample()
            samples.append(s)
            say(f"{int(s.t // 60):02d}:{int(s.t % 60):02d} {_progress(s, previous)}")
            previous = s
            dead = [p for p in parts if not p.alive()]
            if dead:
                for p in dead:
                    died.append(f"{p.name} exited with {p.returncode}:\n{p.log_tail()}")
                say("a part of the session exited: stopping early")
                break
        run_end = samples[-1].t if samples else 0.0
        producer = next(p for p in parts if p.name == "producer")
        producer.stop()
        produced_stats = producer_summary(producer)
        say(f"producer stopped: {produced_stats.get('published', 0):,} published; draining the consumers")
        drained = _drain(smp, cfg.drain_timeout_s)
        final = smp.sample()
        _wait_for_empty_queue(clients, settings.queue_name, cfg.drain_timeout_s)
        stopped_at: dict[str, float] = {}
        for part in parts:
            if part is not producer:
                part.stop()
                stopped_at[part.name] = time.monotonic()
        tracker_s = next((stopped_at[p.name] - p.started for p in parts if p.name == "tracker"), 0.0)
        smp.close()
        end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        say("reconciling: the run's records read back from Kafka, the function's metrics, the subscriber")
        reconciliation = reconcile(cfg, kafka, settings, clients, parts, produced_stats, final, since, since_ms,
                                   end, smp.start_offsets)
        inventory = ministack_inventory(clients, settings)
        gate_results = judge(samples, run_end, cfg.duration_s)
        if died:
            gate_results.append(gates.Gate("every part ran to the end", False, f"{len(died)} exited", "none exits",
                                           "; ".join(d.splitlines()[0] for d in died)))
        if not drained:
            gate_results.append(gates.Gate("drained after the producer stopped", False,
                                           f"lag {sum(final.lag.values()):,} after {cfg.drain_timeout_s:g} s",
                                           "lag 0", "the consumers did not catch up"))
        result = {
            "started_at": begun.isoformat().replace("+00:00", "Z"),
            "minutes": cfg.minutes, "interval_s": cfg.interval_s,
            "maintenance": {"interval_s": cfg.maintenance_interval_s, "tracker_ran_s": round(tracker_s, 1),
                            "passes_due": int(tracker_s // cfg.maintenance_interval_s)},
            "ministack_retention_s": cfg.ministack_retention_s,
            "warmup_s": gates.warmup_s(cfg.duration_s),
            "machine": machine.describe(), "load_before": load_before, "load_after": machine.load_average(),
            "parts": [{"name": p.name, "command": " ".join(p.argv)} for p in parts],
            "samples": [s.as_dict() for s in samples],
            "final": final.as_dict(),
            "gates": [g.as_dict() for g in gate_results],
            "died": died,
            "reconciliation": reconciliation,
            "ministack": inventory,
        }
        result["passed"] = all(g.ok for g in gate_results) and reconciliation["reconciled"]
        return result
    finally:
        for part in parts:
            if part.alive():
                part.stop(timeout=20)
        if not cfg.keep_stack:
            _make("stop", env, check=False)


def _check_clients_reach_the_soak_stack(kafka: KafkaSettings) -> None:
    """The soak starts its stack on KAFKA_PORT and AWS_PORT: refuse to run when the clients would talk to
    another stack (KAFKA_BOOTSTRAP_SERVERS or AWS_ENDPOINT_URL naming another local port)."""
    from urllib.parse import urlsplit

    from infra.stack.servers import StackConfig

    stack = StackConfig.from_env()
    wrong = []
    for host_port in kafka.bootstrap_servers.split(","):
        host, _, port = host_port.strip().rpartition(":")
        if host in ("localhost", "127.0.0.1") and port != str(stack.kafka_port):
            wrong.append(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} but KAFKA_PORT={stack.kafka_port}")
    endpoint = urlsplit(os.environ.get("AWS_ENDPOINT_URL", ""))
    if endpoint.hostname in ("localhost", "127.0.0.1") and endpoint.port != stack.aws_port:
        wrong.append(f"AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']} but AWS_PORT={stack.aws_port}")
    if wrong:
        raise RuntimeError("the soak's stack runs on KAFKA_PORT and AWS_PORT, its clients would talk to another "
                           "one: " + "; ".join(wrong) + " (`make soak` derives both from the ports)")


def _drain(smp: sampler.Sampler, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = smp.sample()
        if s.lag and not any(s.lag.values()):
            return True
        time.sleep(2)
    return False


def _wait_for_empty_queue(clients, queue_name: str, timeout_s: float, quiet_s: float = 6.0,
                          stalled_s: float = 60.0) -> None:
    """The notification printer has taken everything (the queue stayed empty for quiet_s); a printer
    that fell behind gets up to timeout_s, as long as the queue keeps shrinking."""
    try:
        url = clients.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    except Exception:  # noqa: BLE001 - no demo queue: nothing to wait for
        return
    empty_since, deadline = None, time.monotonic() + timeout_s
    depth, lowest, lowest_at = 0, None, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - lowest_at < stalled_s:
        attrs = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        depth = sum(int(v) for v in attrs.values())
        if lowest is None or depth < lowest:
            lowest, lowest_at = depth, time.monotonic()
        if depth == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= quiet_s:
                return
        else:
            empty_since = None
        time.sleep(1)
    say(f"the notification printer left {depth:,} notification(s) in {queue_name}")


def _notifications_received(parts: list[Part]) -> int | None:
    part = next((p for p in parts if p.name == "notifications"), None)
    if part is None:
        return None
    try:
        text = part.log_path.read_text(errors="replace")
    except OSError:
        return None
    found = _RECEIVED.findall(text)
    return int(found[-1]) if found else None


def reconcile(cfg: SoakConfig, kafka: KafkaSettings, settings, clients, parts: list[Part], produced_stats: dict,
              final: sampler.Sample, since: datetime, since_ms: int, end: datetime,
              start_offsets: dict[int, int]) -> dict:
    """The demo's reconciliation, on the soak's whole run (the same recount code, infra/demo/observe.py and
    infra/demo/tracker_recount.py): called once every part has stopped."""
    produced = int(produced_stats.get("published", 0))
    # A whole run is read back: allow it a minute per million records.
    recount = observe.recount(observe.read_topic(kafka, cfg.topic, since_ms,
                                                 timeout_s=120 + 60 * final.produced / 1e6))
    invalid = len(recount.invalid)
    deliverable = recount.in_air - len(recount.too_large)   # too large for SNS: reported failed, not lost
    expected = recount.expected_at(settings.notify_countries)
    dead = observe.records_since(kafka, cfg.dlq_topic, since_ms)
    metrics = {name: observe.metric_sum(name, since, end, settings, clients)
               for name in ("Received", "InAir", "Published", "Failed")}
    received = _notifications_received(parts)
    duplicates = max(0, metrics["Received"] - produced)

    def within(actual: int, expected: int) -> bool:
        return expected <= actual <= expected + duplicates

    checks = [("every produced record is in Kafka", produced == recount.records, f"{produced} vs {recount.records}")]
    for group, committed in sorted(final.committed.items()):
        checks.append((f"consumer group {group} committed every record", committed == recount.records,
                       f"{committed} vs {recount.records}"))
    checks += [
        ("the function received every record", within(metrics["Received"], produced),
         f"{metrics['Received']} vs {produced}"),
        ("in the air matches the recount", within(metrics["InAir"], recount.in_air),
         f"{metrics['InAir']} vs {recount.in_air}"),
        ("nothing is missing at SNS: every deliverable notification was published",
         within(metrics["Published"], deliverable), f"{metrics['Published']} vs {deliverable}"),
        ("published + failed = in the air", metrics["Published"] + metrics["Failed"] == metrics["InAir"] + invalid,
         f"{metrics['Published']} + {metrics['Failed']} vs {metrics['InAir']} + {invalid} invalid"),
        ("nothing valid was dead-lettered", dead == invalid, f"{dead} vs {invalid} invalid"),
    ]
    if any(p.name == "notifications" for p in parts):
        checks.append(("the subscriber got every matching notification",
                       received is not None and within(received, expected),
                       f"{received} vs {expected}" if received is not None else
                       f"the notification printer reported no count (it did not stop on Ctrl-C); {expected} expected"))
    tracker = next((p for p in parts if p.name == "tracker"), None)
    stored = archived = None
    if tracker is not None:
        say("reconciling the tracker: its rows in PostgreSQL against the distinct positions in Kafka")
        stored, tracker_checks, found = tracker_rows.reconcile(kafka, cfg.topic, start_offsets, since,
                                                               tracker.log_path)
        checks += tracker_checks
        if found is not None and any(p.name == "archiver" for p in parts):
            say("reconciling the lake: the run's rows in the Iceberg table against the same distinct positions")
            archived, lake_checks = lake_rows.reconcile(found, cfg.topic)
            checks += lake_checks
    return {
        "produced": produced, "in_kafka": recount.records, "in_air_by_recount": recount.in_air,
        "invalid": invalid, "expected_at_subscriber": expected,
        "received_by_subscriber": received, "dead_lettered": dead, "function_metrics": metrics,
        "duplicates_invoked": duplicates, "committed": final.committed, "tracker": stored, "lake": archived,
        "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
        "reconciled": all(ok for _, ok, _ in checks),
    }


def ministack_inventory(clients, settings) -> dict:
    """What MiniStack holds at the end: log streams and events per function log group, metric
    datapoints per function, queued messages. Each of these lives in MiniStack's memory."""
    out: dict = {"log_groups": {}, "invocations": {}}
    try:
        groups = clients.logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/").get("logGroups", [])
    except Exception as exc:  # noqa: BLE001 - the inventory is informative; the run's verdict does not use it
        logger.warning("log groups unavailable: %s", exc)
        groups = []
    for group in groups:
        name = group["logGroupName"]
        streams = 0
        for page in clients.logs.get_paginator("describe_log_streams").paginate(logGroupName=name):
            streams += len(page.get("logStreams", []))
        out["log_groups"][name] = {"streams": streams, "retention_days": group.get("retentionInDays"),
                                   "stored_bytes": group.get("storedBytes")}
        function = name.rsplit("/", 1)[-1]
        try:
            points = clients.cloudwatch.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName="Invocations",
                Dimensions=[{"Name": "FunctionName", "Value": function}],
                StartTime=datetime.now(timezone.utc) - timedelta(days=1), EndTime=datetime.now(timezone.utc),
                Period=86400, Statistics=["SampleCount"]).get("Datapoints", [])
            out["invocations"][function] = int(sum(p.get("SampleCount", 0) for p in points))
        except Exception as exc:  # noqa: BLE001
            logger.warning("invocation count of %s unavailable: %s", function, exc)
    return out


def judge(samples: list[sampler.Sample], run_end: float, duration_s: float) -> list[gates.Gate]:
    warm = gates.warmup_s(duration_s)
    measured = [s for s in samples if s.t >= warm]
    results: list[gates.Gate] = []
    if len(measured) < 2:
        return [gates.Gate("enough samples after the warm-up", False, f"{len(measured)} samples", ">= 2",
                           "the run ended before the warm-up did")]
    produced = [(s.t, s.produced) for s in measured]
    in_rate = gates.rate_between(produced, warm, run_end) or 0.0
    groups = sorted({g for s in measured for g in s.lag})
    for group in groups:
        results.append(gates.lag_gate(group, [(s.t, s.lag[group]) for s in measured if group in s.lag], in_rate,
                                      warm, run_end))
        results.append(gates.throughput_gate(group, [(s.t, s.committed[group]) for s in measured
                                                     if group in s.committed], warm, run_end, in_rate))
    if not groups:
        results.append(gates.Gate("a consumer group consumed the topic", False, "none found", ">= 1"))
    # A subscriber queue is a consumer too: its depth is the subscriber's lag.
    for queue in sorted({q for s in measured for q in s.queues}):
        results.append(gates.lag_gate(f"queue {queue}", [(s.t, s.queues[queue]) for s in measured
                                                         if queue in s.queues], 0.0, warm, run_end))
    for process in sorted({p for s in measured for p in s.memory_mb}):
        results.append(gates.memory_gate(process, [(s.t, s.memory_mb[process]) for s in measured
                                                   if process in s.memory_mb], warm))
    return results


def write_results(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")

