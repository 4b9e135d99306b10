"""docker-compose.yml: the Docker path stays small and correct though no engine runs here."""
import shutil
import subprocess
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_pins_images_and_exposes_the_native_ports():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    # LocalStack tags after 4.14.0 need an auth token; ":latest" would silently break users.
    assert services["localstack"]["image"] == "localstack/localstack:4.14.0"
    assert all(":" in s["image"] and not s["image"].endswith(":latest") for s in services.values())
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:4566:4566" in services["localstack"]["ports"]
    # KRaft, no ZooKeeper; a host listener and an in-network listener.
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "HOST://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("zookeeper" in name for name in services)
    # Lambdas need the Docker socket inside LocalStack; the token is passed through.
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["localstack"]["volumes"]
    assert "LOCALSTACK_AUTH_TOKEN" in services["localstack"]["environment"]


def test_docker_compose_accepts_the_file_when_the_client_exists():
    docker = shutil.which("docker")
    has_compose = docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    if not has_compose:
        import pytest
        pytest.skip("no `docker compose` client on this machine")
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
