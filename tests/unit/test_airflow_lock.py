"""The Airflow virtualenv's lock (infra/airflow/requirements-lock.txt) agrees with pyproject.toml: every runtime pin
of the project that the Airflow virtualenv installs (all but the ones infra/airflow/project_requirements.py
leaves out) is in the lock at the same version, so `make setup-airflow` installs what the project is tested with."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "infra" / "airflow" / "requirements-lock.txt"
requirements = runpy.run_path(str(ROOT / "infra" / "airflow" / "project_requirements.py"))


def locked() -> dict[str, str]:
    out = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[requirements["name_of"](name)] = version.strip()
    return out


def test_the_lock_pins_airflow_3_and_every_project_pin_at_pyprojects_version():
    lock = locked()
    assert re.fullmatch(r"3\.\d+\.\d+", lock["apache-airflow"])
    assert lock["apache-airflow-core"] == lock["apache-airflow"]
    wanted = {requirements["name_of"](r): r.split("==")[1] for r in requirements["requirements"]()}
    wrong = {name: (version, lock.get(name)) for name, version in wanted.items() if lock.get(name) != version}
    assert not wrong, f"pyproject pin vs lock: {wrong}; renew the lock with bash infra/airflow/lock.sh"


def test_only_fastapi_is_left_to_airflow():
    assert requirements["LEFT_OUT"] == {"fastapi"}
    names = {requirements["name_of"](r) for r in requirements["requirements"]()}
    assert "fastapi" not in names and {"pyiceberg", "duckdb", "psycopg", "kafka-python"} <= names
    assert requirements["name_of"]("pyiceberg[pyarrow,sql-sqlite]==0.12.0") == "pyiceberg"
    assert requirements["name_of"]("Kafka_Python==3.0.12") == "kafka-python"
