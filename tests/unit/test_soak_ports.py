"""The soak starts its own stack on KAFKA_PORT and AWS_PORT and refuses clients that would talk to another one."""
import pytest

from infra.soak.run import _check_clients_reach_the_soak_stack
from pipeline_common.kafka_client import KafkaSettings


def check(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _check_clients_reach_the_soak_stack(KafkaSettings.from_env())


def test_clients_on_the_soak_stack_ports_pass(monkeypatch):
    check(monkeypatch, KAFKA_PORT="29092", AWS_PORT="24566", KAFKA_BOOTSTRAP_SERVERS="localhost:29092",
          AWS_ENDPOINT_URL="http://localhost:24566")


@pytest.mark.parametrize("bootstrap, endpoint, named", [
    ("localhost:9092", "http://localhost:24566", "KAFKA_BOOTSTRAP_SERVERS=localhost:9092 but KAFKA_PORT=29092"),
    ("localhost:29092", "http://127.0.0.1:4566", "AWS_ENDPOINT_URL=http://127.0.0.1:4566 but AWS_PORT=24566"),
])
def test_clients_on_another_local_stack_are_refused_with_both_values(monkeypatch, bootstrap, endpoint, named):
    with pytest.raises(RuntimeError, match="another one") as raised:
        check(monkeypatch, KAFKA_PORT="29092", AWS_PORT="24566", KAFKA_BOOTSTRAP_SERVERS=bootstrap,
              AWS_ENDPOINT_URL=endpoint)
    assert named in str(raised.value)
