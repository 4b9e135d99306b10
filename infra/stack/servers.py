#!/usr/bin/env python3
"""Installs, starts, checks and stops the native stack: Apache Kafka (KRaft, on the JVM), MiniStack and
PostgreSQL (infra/stack/postgres.py; not started when DATABASE_URL points at a server of your own).

    python -m infra.stack.servers fetch                 resolve the broker jars with Maven (cached)
    python -m infra.stack.servers up [--stack docker]   start both, wait until usable, create topics
    python -m infra.stack.servers status                broker, topics, endpoint
    python -m infra.stack.servers down                  stop exactly what `up` started (pid files)
    python -m infra.stack.servers stop-part kafka|ministack|postgres [--kill]   one part only (fault tests)
    python -m infra.stack.servers start-part kafka|ministack|postgres           start that part again, wait until usable
    python -m infra.stack.servers pause-part|resume-part kafka|ministack   SIGSTOP/SIGCONT its process group
    python -m infra.stack.servers database-url          print the tracker's DATABASE_URL (make psql)

Everything it writes lives under .cache/ (jars) and .state/ (data, logs, pid files), both gitignored.
"""
from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

from infra import progress

from infra.stack import postgres, processes
from infra.stack.state_dir import STACK_STATE_DIR, state_dir  # noqa: F401 (STACK_STATE_DIR: the settings table)
from pipeline_common.settings import ConfigError, Settings, setting
from pipeline_common.shared_settings import KAFKA_DLQ_TOPIC, KAFKA_TOPIC

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "infra" / "stack" / "kafka" / "pom.xml"
LOG4J_CONFIG = ROOT / "infra" / "stack" / "kafka" / "log4j2.properties"
JAR_DIR = ROOT / ".cache" / "kafka" / "lib"
JAR_STAMP = JAR_DIR / ".pom-sha256"
STATE = state_dir()
KAFKA_DIR = STATE / "kafka"
KAFKA_DATA = KAFKA_DIR / "data"
MINISTACK_DIR = STATE / "ministack"
LOG_DIR = STATE / "logs"
PIDS = {"kafka": STATE / "kafka.pid", "ministack": STATE / "ministack.pid"}
COMPOSE = ROOT / "docker-compose.yml"


class StackError(RuntimeError):
    """Something outside the project stops the stack; the message says what to do."""


_PORT = dict(minimum=1, maximum=65535)


@dataclass(frozen=True)
class StackConfig(Settings):
    USED_BY: ClassVar[str] = "`make run` (infra/stack/servers.py)"

    kafka_port: int = setting("KAFKA_PORT", 9092, **_PORT, help="native broker's client port")
    controller_port: int = setting("KAFKA_CONTROLLER_PORT", 9093, **_PORT, help="native broker's KRaft controller port")
    aws_port: int = setting("AWS_PORT", 4566, **_PORT, help="native AWS endpoint (MiniStack) port")
    kafka_heap: str = setting("KAFKA_HEAP", "768m", help="native broker JVM heap (-Xms and -Xmx: committed at start)")
    ministack_log_level: str = setting("MINISTACK_LOG_LEVEL", "WARNING", parse=str.upper,
                                       help="native AWS endpoint's log level")
    topic: str = KAFKA_TOPIC.field()
    dlq_topic: str = KAFKA_DLQ_TOPIC.field()
    alerts_dlq_topic: str = setting("KAFKA_ALERTS_DLQ_TOPIC", "aviation-data-alerts-dlq",
                                    help="the alerts mapping's dead-letter topic (infra/aws/template.yaml "
                                         "AlertsOnFailureDestination), created beside the other two")
    partitions: int = setting("KAFKA_TOPIC_PARTITIONS", 6, minimum=1, maximum=1000,
                              help="partitions of the flight-state topic when `make run` creates it")
    retention_ms: int = setting("KAFKA_RETENTION_MS", 24 * 3600 * 1000, minimum=60_000,
                                doc_default="24 h (86400000)", help="flight-state topic retention")
    retention_bytes: int = setting("KAFKA_RETENTION_BYTES", 1024 ** 3, minimum=-1,
                                   doc_default="1 GiB (1073741824)", help="flight-state topic retention per partition")
    dlq_retention_ms: int = setting("KAFKA_DLQ_RETENTION_MS", 7 * 24 * 3600 * 1000, minimum=60_000,
                                    doc_default="7 days (604800000)", help="dead-letter topic retention")
    ministack_logs_keep_s: int = setting(
        "MINISTACK_LOGS_KEEP_S", 900, minimum=60, unit="s",
        help="how long the native AWS endpoint keeps CloudWatch Logs streams (AWS: the log group's retention); "
             "each Lambda invocation leaves one, so a long session would otherwise grow without bound")
    ministack_metrics_raw_s: int = setting(
        "MINISTACK_METRICS_RAW_S", 600, minimum=60, unit="s",
        help="after this, the native AWS endpoint keeps CloudWatch datapoints as one statistic set per metric "
             "and minute (AWS keeps sub-minute data 3 h, 1-minute data 15 days)")
    start_timeout_s: int = setting("STACK_START_TIMEOUT_S", 90, minimum=5, unit="s",
                                   help="how long `make run` waits for each part")

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.kafka_port}"

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.aws_port}"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


say = progress.printer("[stack]")


# --------------------------------------------------------------------------- jars

def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def fetch_jars() -> Path:
    """Resolve the pinned broker jars once; later calls need no network."""
    if JAR_STAMP.exists() and JAR_STAMP.read_text().strip() == _pom_digest() and any(JAR_DIR.glob("kafka_2.13-*.jar")):
        return JAR_DIR
    _require_java()
    resolve_pom(POM, JAR_DIR, "Apache Kafka broker jars")
    JAR_STAMP.write_text(_pom_digest())
    return JAR_DIR


def resolve_pom(pom: Path, dest: Path, what: str) -> list[Path]:
    """Copy the pinned dependencies of `pom` into a fresh `dest` with Maven; returns the jars."""
    if shutil.which("mvn") is None:
        raise StackError(f"Maven (mvn) is not installed; it resolves the {what} from the pinned "
                         f"{_rel(pom)}. Install it (Debian: apt-get install maven) and run `make setup` again.")
    say(f"resolving {what} with Maven into {_rel(dest)} (first run only)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    started = time.monotonic()
    proc = subprocess.run(
        ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={dest}", "-DincludeScope=runtime"],
        capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(f"Maven could not resolve the {what} from {_rel(pom)} (is Maven Central "
                         f"reachable? a proxy in ~/.m2/settings.xml?). Maven said:\n{tail}")
    jars = sorted(dest.glob("*.jar"))
    say(f"resolved {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return jars


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java is not installed; the Kafka 4 broker needs Java 17 or newer "
                         "(Debian: apt-get install openjdk-17-jre-headless).")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major and major < 17:
        raise StackError(f"Kafka 4 needs Java 17 or newer, found: {out.splitlines()[0]}")
    return java


# --------------------------------------------------------------------------- processes

def _read_pid(name: str) -> int | None:
    try:
        pid = int(PIDS[name].read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if processes.alive(pid) else None


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _spawn(name: str, argv: list[str], log_path: Path, env: dict | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # Own session: `down` can signal the whole group (MiniStack's Lambda workers included),
        # and a Ctrl-C in the terminal that ran `make run` does not reach it.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=ROOT, env=env, start_new_session=True)
    PIDS[name].write_text(str(proc.pid))
    return proc.pid


def _stop(name: str, timeout: float = 20.0, kill: bool = False) -> bool:
    pid = _read_pid(name)
    PIDS[name].unlink(missing_ok=True)
    if pid is None:
        return False
    if not kill:
        # A paused part (pause-part) would never act on SIGTERM.
        processes.signal_group(pid, signal.SIGCONT)
    steps = ((signal.SIGKILL, 5.0),) if kill else ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0))

    def killing(sig) -> None:
        if sig == signal.SIGTERM:
            say(f"{name} (pid {pid}) did not stop within {timeout:.0f}s; killing it")
    processes.stop_group(pid, steps, on_timeout=killing)
    return True


# --------------------------------------------------------------------------- kafka

def _kafka_properties(cfg: StackConfig) -> str:
    return "\n".join([
        "# Written by infra/stack/servers.py: single-node KRaft (broker + controller in one JVM).",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{cfg.controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
        f"advertised.listeners=PLAINTEXT://localhost:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={KAFKA_DATA}",
        f"num.partitions={cfg.partitions}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=6",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # A single developer broker: rebalance at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms=0",
        f"log.retention.ms={cfg.retention_ms}",
        "log.segment.bytes=134217728",
        "auto.create.topics.enable=true",
        "message.max.bytes=8388608",
        "",
    ])


def _kafka_uuid() -> str:
    # Like Kafka's Uuid.randomUuid(): never starting with "-", which a command line would take for an option
    # (one fresh start in 64 failed with "argument --cluster-id/-t: expected one argument").
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# The JVM hands native memory it freed (the JIT compilers' arenas, mostly) back to the system every
# minute; glibc keeps it otherwise, and the broker's resident memory crept up ~1-3 MB/min for half an hour
# (make soak; `jcmd <pid> System.trim_native_heap` gave back 12 MB after 12 minutes). Java 17.0.9+ and 21+.
TRIM_NATIVE_HEAP = "-XX:TrimNativeHeapInterval=60000"


@functools.lru_cache(maxsize=None)
def _java_accepts(java: str, option: str) -> bool:
    return subprocess.run([java, option, "-version"], capture_output=True).returncode == 0


def _java_cmd(cfg: StackConfig, main_class: str, *args: str, server: bool = True) -> list[str]:
    java = _require_java()
    # The broker's whole heap is committed and made resident at start (-Xms = -Xmx, as Kafka's own
    # kafka-server-start.sh sets them; AlwaysPreTouch), not region by region as G1 first uses it or grows
    # the heap: from -Xms256m its memory crept up +0.95 MB/min over a quiet 60-minute
    # make soak (committed heap 256 -> 330 MB), and ~2-6 MB/min without the pre-touch.
    heap = ([f"-Xms{cfg.kafka_heap}", f"-Xmx{cfg.kafka_heap}", "-XX:+AlwaysPreTouch"] if server
            else ["-Xmx256m"])  # a one-off tool (storage format): a small heap, nothing to pre-touch
    return [java, *heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            *([TRIM_NATIVE_HEAP] if _java_accepts(java, TRIM_NATIVE_HEAP) else []),
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={LOG_DIR}", "-cp", f"{JAR_DIR}/*", main_class, *args]


def _format_storage(cfg: StackConfig, props: Path) -> None:
    if (KAFKA_DATA / "meta.properties").exists():
        return
    say("formatting KRaft storage (first start)")
    proc = subprocess.run(_java_cmd(cfg, "kafka.tools.StorageTool", "format", "--standalone",
                                    f"--cluster-id={_kafka_uuid()}", "-c", str(props), server=False),
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise StackError(f"Kafka storage format failed:\n{(proc.stdout + proc.stderr).strip()[-2000:]}")


def kafka_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    # Nothing listening: say so at once (kafka-python would retry its bootstrap for ~30 s and log
    # "Bootstrap failed" on the way).
    if port.isdigit() and host in ("localhost", "127.0.0.1", "") and not _port_open(int(port)):
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConfigurationError, KafkaError
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                 client_id="stack-probe")
    except KafkaConfigurationError:
        raise
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start_kafka(cfg: StackConfig) -> None:
    if _read_pid("kafka"):
        say(f"kafka already running (pid {_read_pid('kafka')})")
        return
    for port in (cfg.kafka_port, cfg.controller_port):
        if _port_open(port):
            raise StackError(f"port {port} is already in use by another process, so the Kafka broker cannot "
                             f"bind it. Stop that process (`ss -ltnp 'sport = :{port}'` shows it) or choose "
                             "other ports with KAFKA_PORT / KAFKA_CONTROLLER_PORT.")
    fetch_jars()
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    props = KAFKA_DIR / "server.properties"
    props.write_text(_kafka_properties(cfg))
    _format_storage(cfg, props)
    log = LOG_DIR / "kafka.out"
    pid = _spawn("kafka", _java_cmd(cfg, "kafka.Kafka", str(props)), log)
    say(f"kafka starting (pid {pid}, log {_rel(log)})")
    _wait_until_usable("kafka", "the Kafka broker", pid, log, cfg.start_timeout_s, poll_s=0.5,
                       usable=lambda: _port_open(cfg.kafka_port) and kafka_ready(cfg.bootstrap))


def ensure_topics(cfg: StackConfig) -> dict[str, int]:
    """Create the data topic and both mappings' dead-letter topics if missing; returns {topic: partitions}."""
    from kafka.admin import NewTopic
    return create_topics({"bootstrap_servers": cfg.bootstrap, "client_id": "stack-admin"}, [
        NewTopic(cfg.topic, cfg.partitions, 1, topic_configs={
            "retention.ms": str(cfg.retention_ms), "retention.bytes": str(cfg.retention_bytes)}),
        NewTopic(cfg.dlq_topic, 1, 1, topic_configs={"retention.ms": str(cfg.dlq_retention_ms)}),
        NewTopic(cfg.alerts_dlq_topic, 1, 1, topic_configs={"retention.ms": str(cfg.dlq_retention_ms)}),
    ])


def create_topics(client_kwargs: dict, topics: list, leaders_timeout_s: float = 30.0) -> dict[str, int]:
    """Create the missing ones of `topics` (kafka NewTopic: name, partitions, replication, configs) and
    return {name: partitions} once every partition has a leader: a consumer group that joins before that
    gets no partitions, and kafka-python may not notice them until its next metadata refresh
    (metadata.max.age.ms, 5 minutes). The one place the pipeline, the benchmarks and the fault tests
    create topics."""
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError
    admin = KafkaAdminClient(**client_kwargs)
    names = [t.name for t in topics]
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another starter: that is the state we want
        deadline = time.monotonic() + leaders_timeout_s
        while True:
            described = admin.describe_topics(names)
            led = {d["name"]: sum(1 for p in d.get("partitions") or ()
                                  if p.get("error_code") == 0 and p.get("leader_id", -1) >= 0) for d in described}
            if all(d.get("error_code") == 0 and led[d["name"]] >= len(d.get("partitions") or ()) > 0
                   for d in described):
                return {d["name"]: len(d["partitions"]) for d in described}
            if time.monotonic() > deadline:
                raise StackError(f"topics {names}: partitions without a leader after {leaders_timeout_s:.0f} s: {led}")
            time.sleep(0.2)
    finally:
        admin.close()


# --------------------------------------------------------------------------- ministack

def endpoint_ready(endpoint: str, timeout: float = 2.0) -> bool:
    """True when the endpoint answers a real AWS call (SNS ListTopics)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    client = boto3.client("sns", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                          aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                          aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
                          config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0}))
    try:
        client.list_topics()
        return True
    except (BotoCoreError, ClientError):
        return False


def _ministack_home() -> Path:
    from lakehouse.athena import ministack_home  # here, not at the top: only starting MiniStack needs it
    return ministack_home(MINISTACK_DIR / "home")


def start_ministack(cfg: StackConfig) -> None:
    if _read_pid("ministack"):
        say(f"ministack already running (pid {_read_pid('ministack')})")
        return
    if _port_open(cfg.aws_port):
        raise StackError(f"port {cfg.aws_port} is already in use, so MiniStack cannot bind it (a LocalStack "
                         "container? `make stop STACK=docker`). Stop that process or set AWS_PORT.")
    if importlib.util.find_spec("ministack") is None:
        raise StackError("MiniStack is not installed in this virtualenv; run `make setup`.")
    MINISTACK_DIR.mkdir(parents=True, exist_ok=True)
    # MiniStack hands its own AWS_ENDPOINT_URL to every function it runs: it must be this endpoint, never one
    # inherited from the caller's shell (an AWS_ENDPOINT_URL for another stack would send the functions'
    # SNS, S3 and CloudWatch calls there).
    # S3 on disk (S3_PERSIST): the lake's data files and metadata must outlive a MiniStack restart or kill -9,
    # since the lake's catalog (in PostgreSQL) does; it also keeps them out of MiniStack's memory.
    # A HOME of its own: MiniStack's Athena runs `INSTALL iceberg` in DuckDB, which finds the pip packages'
    # extensions through ~/.duckdb/extensions there instead of downloading them (lakehouse/athena.py).
    env = dict(os.environ, BIND_HOST="127.0.0.1", GATEWAY_PORT=str(cfg.aws_port), TMPDIR=str(MINISTACK_DIR),
               LOG_LEVEL=cfg.ministack_log_level, AWS_ENDPOINT_URL=cfg.endpoint,
               S3_PERSIST="1", S3_DATA_DIR=str(MINISTACK_DIR / "s3"), HOME=str(_ministack_home()))
    log = LOG_DIR / "ministack.out"
    # Through infra/stack/ministack_main.py: MiniStack with its fixes for costs that grow with a backlog.
    pid = _spawn("ministack", [sys.executable, "-m", "infra.stack.ministack_main"], log, env=env)
    say(f"ministack starting (pid {pid}, log {_rel(log)})")
    _wait_until_usable("ministack", "MiniStack", pid, log, cfg.start_timeout_s, poll_s=0.3,
                       usable=lambda: _port_open(cfg.aws_port) and endpoint_ready(cfg.endpoint))


def _wait_until_usable(name: str, what: str, pid: int, log: Path, timeout_s: float, poll_s: float,
                       usable) -> None:
    """Until ``usable()``; a part that exits, or does not answer within the timeout (then it is
    stopped), is a StackError quoting the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not processes.alive(pid):
            PIDS[name].unlink(missing_ok=True)
            raise StackError(f"{what} exited during start-up. Last lines of {log}:\n{processes.log_tail(log)}")
        if usable():
            return
        time.sleep(poll_s)
    _stop(name)
    raise StackError(f"{what} did not answer within {timeout_s}s (STACK_START_TIMEOUT_S). "
                     f"Last lines of {log}:\n{processes.log_tail(log)}")


# --------------------------------------------------------------------------- docker path

def _compose(*args: str) -> None:
    if shutil.which("docker") is None:
        raise StackError("STACK=docker needs Docker with the compose plugin; use the native stack (the default).")
    proc = subprocess.run(["docker", "compose", "-f", str(COMPOSE), *args], cwd=ROOT)
    if proc.returncode != 0:
        raise StackError(f"`docker compose {' '.join(args)}` failed (is the Docker engine running?)")


# --------------------------------------------------------------------------- commands

def up(cfg: StackConfig, stack: str = "native") -> None:
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    if stack == "docker":
        _compose("up", "-d", "--wait")
    else:
        try:
            start_kafka(cfg)
            say(f"kafka ready on {cfg.bootstrap} ({time.monotonic() - started:.1f}s)")
            start_ministack(cfg)
            say(f"ministack ready on {cfg.endpoint} ({time.monotonic() - started:.1f}s)")
            db_url = postgres.start(postgres.PostgresConfig.from_env(), cfg.start_timeout_s)
            say(f"postgres ready: DATABASE_URL={postgres.redact_url(db_url)} ({time.monotonic() - started:.1f}s)")
        except BaseException:
            # Nothing half-started: whatever came up in this call goes down again.
            postgres.stop()
            for name in ("ministack", "kafka"):
                _stop(name)
            raise
    deadline = time.monotonic() + cfg.start_timeout_s
    while not (kafka_ready(cfg.bootstrap) and endpoint_ready(cfg.endpoint)):
        if time.monotonic() > deadline:
            raise StackError("the stack did not become usable in time; see `make status`")
        time.sleep(1)
    topics = ensure_topics(cfg)
    say("topics: " + ", ".join(f"{t} ({n} partitions)" for t, n in topics.items()))
    say(f"stack up in {time.monotonic() - started:.1f}s: Kafka {cfg.bootstrap}, AWS endpoint {cfg.endpoint}")


def down(stack: str = "native") -> None:
    if stack == "docker":
        _compose("down")
        return
    stopped = [name for name in ("ministack", "kafka") if _stop(name)] + (["postgres"] if postgres.stop() else [])
    say("stopped " + ", ".join(stopped) if stopped else "nothing was running")


PARTS = ("kafka", "ministack", "postgres")


def stop_part(name: str, kill: bool = False) -> bool:
    """Stop one part that `up` started (SIGTERM, or SIGKILL with kill=True); data on disk stays."""
    stopped = postgres.stop(kill=kill) if name == "postgres" else _stop(name, kill=kill)
    say(f"{name} {'killed' if kill else 'stopped'}" if stopped else f"{name} was not running")
    return stopped


def start_part(cfg: StackConfig, name: str) -> None:
    """Start one part again on the same ports and state directory, and wait until it answers.

    MiniStack keeps its resources in memory: after a restart they must be deployed again.
    """
    STATE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if name == "kafka":
        start_kafka(cfg)
        ensure_topics(cfg)
    elif name == "postgres":
        postgres.start(postgres.PostgresConfig.from_env(), cfg.start_timeout_s)
    else:
        start_ministack(cfg)
    say(f"{name} ready ({time.monotonic() - started:.1f}s)")


def pause_part(name: str, resume: bool = False) -> bool:
    """SIGSTOP (or SIGCONT) a part's whole process group: connections hang instead of being refused,
    and the part keeps its state (MiniStack's resources survive a pause, not a restart)."""
    pid = postgres._read_pid() if name == "postgres" else _read_pid(name)
    if pid is None:
        raise StackError(f"{name} is not running (no live pid in {_rel(PIDS[name])})")
    processes.signal_group(pid, signal.SIGCONT if resume else signal.SIGSTOP)
    say(f"{name} (process group {pid}) {'resumed' if resume else 'paused'}")
    return True


def status(cfg: StackConfig) -> bool:
    ok = True
    for name in ("kafka", "ministack"):
        pid = _read_pid(name)
        say(f"{name:9s} process: {'pid ' + str(pid) if pid else 'not started by this project'}")
    if kafka_ready(cfg.bootstrap):
        from kafka import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=cfg.bootstrap, client_id="stack-status")
        try:
            topics = {d["name"]: len(d["partitions"]) for d in admin.describe_topics()
                      if not d["name"].startswith("__")}
        finally:
            admin.close()
        say(f"kafka     {cfg.bootstrap}: reachable; topics: "
            + (", ".join(f"{t}({n})" for t, n in sorted(topics.items())) or "none"))
    else:
        ok = False
        say(f"kafka     {cfg.bootstrap}: NOT reachable (make run)")
    if endpoint_ready(cfg.endpoint):
        health = ""
        try:
            with urllib.request.urlopen(f"{cfg.endpoint}/_ministack/health", timeout=2) as resp:
                health = " (" + json.loads(resp.read()).get("edition", "ministack") + ")"
        except (urllib.error.URLError, ValueError, OSError):
            pass
        say(f"aws       {cfg.endpoint}: healthy{health}")
    else:
        ok = False
        say(f"aws       {cfg.endpoint}: NOT answering (make run)")
    return postgres.status(postgres.PostgresConfig.from_env()) and ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.stack.servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "up", "down", "status", "stop-part", "start-part",
                                            "pause-part", "resume-part", "database-url"])
    parser.add_argument("part", nargs="?", choices=PARTS, help="for the *-part commands")
    parser.add_argument("--stack", choices=["native", "docker"], default=os.environ.get("STACK", "native"))
    parser.add_argument("--kill", action="store_true", help="stop-part: SIGKILL at once instead of SIGTERM")
    StackConfig.add_flags(parser.add_argument_group("settings"))
    args = parser.parse_args(argv)
    if args.command.endswith("-part") and (args.part is None or args.stack != "native"):
        parser.error(f"{args.command} needs a part ({' or '.join(PARTS)}) and the native stack")
    try:
        cfg = StackConfig.from_args(args)
        if args.command == "fetch":
            if args.stack == "native":
                fetch_jars()
                postgres.fetch()
        elif args.command == "up":
            up(cfg, args.stack)
        elif args.command == "down":
            down(args.stack)
        elif args.command == "status":
            return 0 if status(cfg) else 1
        elif args.command == "database-url":
            print(postgres.PostgresConfig.from_env().url)
        elif args.command == "stop-part":
            stop_part(args.part, kill=args.kill)
        elif args.command == "start-part":
            start_part(cfg, args.part)
        elif args.command in ("pause-part", "resume-part"):
            pause_part(args.part, resume=args.command == "resume-part")
    except (StackError, ConfigError, postgres.PostgresError) as exc:
        progress.say(f"error: {exc}", "[stack]", stderr=True)
        return 1
    except KeyboardInterrupt:
        progress.say("interrupted; started processes were stopped", "[stack]", stderr=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
