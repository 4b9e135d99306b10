"""`make up`, `make ps`, `make down` as a newcomer runs them, on ports and a state folder of their own
(the test session's stack keeps running beside them): aircraft on the map, every part listed, and
nothing left running afterwards."""
import json
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("trigger", "tracker", "notifications", "alerts", "producer")
STACK = ("kafka", "ministack", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(target: str, env: dict, timeout: float, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", target, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def session_pids(state: Path) -> set[int]:
    """The parts `make up` recorded, the stack's pid files, and every child of them."""
    pids = [p["pid"] for p in json.loads((state / "session.json").read_text())["parts"]]
    pids += [int(f.read_text().split()[0]) for f in state.glob("*.pid")]
    found = set()
    for pid in pids:
        try:
            found |= {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
    return found


def processes_naming(text: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if text in cmdline:
            found.append(f"{proc.info['pid']} {cmdline[:120]}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_up_shows_aircraft_ps_lists_every_part_and_down_leaves_nothing(tmp_path):
    # GIVEN ports and a state folder of its own
    kafka, controller, aws, pg, api = (free_port() for _ in range(5))
    state = tmp_path / "state"
    env = {**os.environ, "KAFKA_PORT": str(kafka), "KAFKA_CONTROLLER_PORT": str(controller), "AWS_PORT": str(aws),
           "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{kafka}", "AWS_ENDPOINT_URL": f"http://localhost:{aws}",
           "POSTGRES_PORT": str(pg), "TRACKER_API_PORT": str(api), "STACK_STATE_DIR": str(state)}
    for name in ("DATABASE_URL", "MAKEFLAGS", "MAKELEVEL", "ARGS", "PART"):
        env.pop(name, None)
    pids: set[int] = set()
    try:
        # WHEN `make up` runs
        started = make("up", env, 600, "ARGS=--timeout 300")
        output = started.stdout + started.stderr
        # THEN it returns once the map has aircraft, and says where to look
        assert started.returncode == 0, output
        assert "aircraft on the map" in output and f"map    http://127.0.0.1:{api}/" in output, output
        print(next(line for line in output.splitlines() if "aircraft on the map," in line))  # the time it took
        assert f"stats  http://127.0.0.1:{api}/stats.html" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/flights", timeout=10) as resp:
            assert json.loads(resp.read())["count"] > 0
        pids = session_pids(state)
        for part in PARTS:
            assert (state / "logs" / f"{part}.log").exists()
        # AND `make ps` lists every part and the stack with a pid, and the lag of both mappings and the tracker
        ps = make("ps", env, 120)
        assert ps.returncode == 0, ps.stdout + ps.stderr
        rows = {line.split()[0]: line.split() for line in ps.stdout.splitlines() if line.strip()}
        for part in PARTS + STACK:
            assert rows[part][1].isdigit(), ps.stdout
        for group in ("flight-processor-esm", "flight-alerts-esm", "flight-tracker"):
            assert rows[group][-1].replace(",", "").isdigit(), ps.stdout
        # AND the kafka-python lines of the parts went to the stack's own file, never a part's log
        for part in PARTS:
            assert "kafka.net" not in (state / "logs" / f"{part}.log").read_text()
    finally:
        # WHEN `make down` runs (twice: it is idempotent)
        pids = pids or (session_pids(state) if (state / "session.json").exists() else set())
        stopped = make("down", env, 300)
        again = make("down", env, 120)
        # As root, PostgreSQL ran from a copy outside pytest's private folder (infra/stack/postgres.py server_home)
        location = state / "postgres" / "location"
        if location.exists():
            shutil.rmtree(location.read_text().strip(), ignore_errors=True)
    # THEN no process of the session is left, and the second `make down` found nothing to do
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "nothing left running" in stopped.stdout
    assert [pid for pid in pids if psutil.pid_exists(pid)] == []
    assert processes_naming(str(state)) == []
    assert again.returncode == 0 and "no part of `make up` was running" in again.stdout
