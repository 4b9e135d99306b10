"""The native stack: a real broker that carries messages, an endpoint that answers AWS calls,
and a lifecycle that starts cleanly, fails clearly and leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import psutil
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

ROOT = Path(__file__).resolve().parents[2]
STACK = [sys.executable, "-m", "infra.stack.servers"]


def test_broker_round_trips_a_keyed_message(stack):
    # GIVEN a fresh topic on the real broker
    topic = f"it-stack-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    # WHEN a keyed message is produced with acks=all
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    meta = producer.send(topic, key=b"3c6444", value=b'{"icao24":"3c6444"}').get(timeout=30)
    producer.close()
    # THEN a consumer reads it back, same key, value, partition and offset
    consumer = KafkaConsumer(topic, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
                             group_id=f"it-{uuid.uuid4().hex[:8]}", consumer_timeout_ms=15000)
    records = [r for r in consumer]
    consumer.close()
    assert [(r.key, r.value, r.partition, r.offset) for r in records] == \
        [(b"3c6444", b'{"icao24":"3c6444"}', meta.partition, meta.offset)]


def test_pipeline_topics_exist_with_configured_partitions(stack):
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    described = {d["name"]: d for d in admin.describe_topics(["aviation-data", "aviation-data-dlq"])}
    configs = admin.describe_configs([__import__("kafka.admin", fromlist=["ConfigResource"]).ConfigResource(
        "TOPIC", "aviation-data", ["retention.ms"])])
    admin.close()
    assert len(described["aviation-data"]["partitions"]) == int(os.environ.get("KAFKA_TOPIC_PARTITIONS", 6))
    assert len(described["aviation-data-dlq"]["partitions"]) >= 1
    assert "retention.ms" in repr(configs)


def test_endpoint_creates_an_sns_topic(stack):
    sns = boto3.client("sns", endpoint_url=stack.endpoint)
    name = f"it-stack-{uuid.uuid4().hex[:8]}"
    arn = sns.create_topic(Name=name)["TopicArn"]
    try:
        assert arn.endswith(":" + name)
        assert arn in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    finally:
        sns.delete_topic(TopicArn=arn)


def test_awslocal_lists_the_topics_of_the_native_endpoint(stack):
    """`awslocal sns list-topics` (installed by make setup) answers from the endpoint make run started."""
    sns = boto3.client("sns", endpoint_url=stack.endpoint)
    arn = sns.create_topic(Name=f"it-awslocal-{uuid.uuid4().hex[:8]}")["TopicArn"]
    try:
        awslocal = Path(sys.executable).parent / "awslocal"
        env = {**os.environ, "AWS_ENDPOINT_URL": stack.endpoint, "DISABLE_DEPRECATION_NOTICE": "1"}
        out = subprocess.run([str(awslocal), "sns", "list-topics"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert arn in out.stdout
    finally:
        sns.delete_topic(TopicArn=arn)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _isolated_env(tmp_path: Path) -> dict:
    return dict(os.environ, STACK_STATE_DIR=str(tmp_path / "state"), KAFKA_PORT=str(_free_port()),
                KAFKA_CONTROLLER_PORT=str(_free_port()), AWS_PORT=str(_free_port()), KAFKA_HEAP="384m",
                POSTGRES_PORT=str(_free_port()))


def _pids_of(state_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in state_dir.glob("*.pid")]


def _group_alive(pgid: int) -> bool:
    out = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return any(line.split()[0] == str(pgid) and not line.split()[1].startswith("Z")
               for line in out if line.strip())


@pytest.mark.slow
def test_second_stack_starts_reports_and_stops_leaving_no_process(stack, tmp_path):
    """A whole up/status/down cycle on other ports, beside the shared stack, started from a shell whose
    AWS_ENDPOINT_URL points at the shared stack."""
    env = {**_isolated_env(tmp_path), "AWS_ENDPOINT_URL": stack.endpoint}
    up = subprocess.run(STACK + ["up"], env=env, capture_output=True, text=True, timeout=240)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "stack up in" in up.stdout
        pids = _pids_of(tmp_path / "state")
        assert len(pids) == 3  # kafka, ministack, postgres
        # MiniStack hands its AWS_ENDPOINT_URL to the functions it runs: its own, not the caller's
        ministack = psutil.Process(int((tmp_path / "state" / "ministack.pid").read_text()))
        assert ministack.environ()["AWS_ENDPOINT_URL"] == f"http://localhost:{env['AWS_PORT']}"
        status = subprocess.run(STACK + ["status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and ("reachable; topics: aviation-data(6), aviation-data-alerts-dlq(1), "
                                           "aviation-data-dlq(1)") in status.stdout
        if not os.environ.get("DATABASE_URL"):
            assert f"DATABASE_URL=postgresql://flightpipe@127.0.0.1:{env['POSTGRES_PORT']}/flightpipe" in status.stdout
        down = subprocess.run(STACK + ["down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "stopped ministack, kafka, postgres" in down.stdout
        assert not any(_group_alive(pid) for pid in pids), "a stack process (or a child) survived `down`"
        assert _pids_of(tmp_path / "state") == []
        after = subprocess.run(STACK + ["status"], env=env, capture_output=True, text=True, timeout=60)
        assert after.returncode == 1 and "NOT reachable" in after.stdout
    finally:
        # A failed assertion above must not leave the second stack running for the rest of the session
        # (its PostgreSQL outlived a failed run once): `down` again is a no-op when it already stopped.
        subprocess.run(STACK + ["down"], env=env, capture_output=True, text=True, timeout=120)
        # As root, pytest's private tmp is out of `nobody`'s reach: the database lived in /var/tmp instead.
        pointer = tmp_path / "state" / "postgres" / "location"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)


def test_port_in_use_is_a_clear_error_and_nothing_is_left_started(stack, tmp_path):
    env = _isolated_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["KAFKA_PORT"])))
        squatter.listen()
        proc = subprocess.run(STACK + ["up"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"port {env['KAFKA_PORT']} is already in use" in proc.stderr
    assert _pids_of(tmp_path / "state") == []
