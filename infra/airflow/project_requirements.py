"""Prints pyproject.toml's runtime pins less the ones that clash with Airflow, one per line: what the Airflow
virtualenv installs beside infra/airflow/requirements-lock.txt (make setup-airflow) and what
infra/airflow/lock.sh resolves with Airflow. Read from pyproject.toml itself, so there is no second list.

Left out: fastapi. Airflow 3's API server pins its own FastAPI range and the tracker's pin is outside it;
the DAGs never run the tracker's API, so the Airflow virtualenv keeps Airflow's FastAPI."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LEFT_OUT = {"fastapi"}
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def name_of(requirement: str) -> str:
    """'pyiceberg[pyarrow]==0.12.0' -> 'pyiceberg' (normalised as pip does: lower case, - for _ and .)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0]).lower()


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if name_of(d) not in LEFT_OUT]


if __name__ == "__main__":
    sys.stdout.write("".join(f"{r}\n" for r in requirements()))
