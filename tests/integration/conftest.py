"""Session fixture for integration tests: the real Kafka broker and the AWS endpoint.

A stack that already answers (``make run``) is reused and left running; otherwise the session
starts one with infra.stack.servers and stops it at the end, so ``make test`` needs nothing running.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass

import pytest

from infra.stack import servers as stack_mod

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    endpoint: str
    started_here: bool


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack():
    cfg = stack_mod.StackConfig.from_env()
    # The endpoint, region and fake credentials every boto3 client in these tests will pick up.
    env = {"AWS_ENDPOINT_URL": cfg.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        running = stack_mod.kafka_ready(cfg.bootstrap) and stack_mod.endpoint_ready(cfg.endpoint)
        if not running:
            stack_mod.up(cfg)
        else:
            stack_mod.ensure_topics(cfg)
        try:
            yield Stack(cfg.bootstrap, cfg.endpoint, started_here=not running)
        finally:
            if not running and not os.environ.get("KEEP_STACK"):
                stack_mod.down()


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawn(tmp_path):
    """Starts `python -m trigger` with its log in a file (a pipe nobody reads would fill up and stall
    it); kills whatever is still running when the test ends, pass or fail."""
    procs = []

    def start(env: dict, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"trigger-{len(procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "trigger", *args], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        proc.log_path = Path(log.name)
        procs.append((proc, log))
        return proc

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def database_url():
    """The real PostgreSQL: DATABASE_URL when set, else the native server on POSTGRES_PORT (started here,
    and stopped at the end, unless it already answers)."""
    from infra.stack import postgres

    cfg = postgres.PostgresConfig.from_env()
    if cfg.external or postgres.ready(cfg.url) is None:
        yield cfg.url
        return
    url = postgres.start(cfg)
    try:
        yield url
    finally:
        if not os.environ.get("KEEP_STACK"):
            postgres.stop()


@pytest.fixture
def tracker_procs():
    """Tracker processes a test started (tracker_support.spawn_tracker); any still running at the end is killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
