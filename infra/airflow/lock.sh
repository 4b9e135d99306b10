#!/usr/bin/env bash
# Regenerates infra/airflow/requirements-lock.txt: Airflow (the version below) and the project's own runtime
# dependencies at pyproject.toml's pins, resolved together by pip in a throwaway virtualenv, then frozen.
#
# Why a lock of our own: Airflow's official constraints file (constraints-X.Y.Z/constraints-3.N.txt) lives on a
# constraints branch of Airflow's repository, which these machines cannot download; the frozen set of a
# successful install is what `make setup-airflow` installs instead, exactly, every time.
# FastAPI is left out of the project's pins (infra/airflow/project_requirements.py says why).
#
#   bash infra/airflow/lock.sh            # after changing AIRFLOW_VERSION or a pin in pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/../.."
AIRFLOW_VERSION=3.3.2
PYTHON=${PYTHON:-python3}
LOCK=infra/airflow/requirements-lock.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$work/venv/bin/python" infra/airflow/project_requirements.py > "$work/project.txt"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "apache-airflow==$AIRFLOW_VERSION" -r "$work/project.txt"
"$work/venv/bin/python" -m pip check
{
  echo "# The Airflow virtualenv's exact package set (.venv-airflow, make setup-airflow): apache-airflow==$AIRFLOW_VERSION"
  echo "# and pyproject.toml's runtime pins less fastapi, resolved together by pip on Python $("$work/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  echo "# and frozen by infra/airflow/lock.sh on $(date -u +%Y-%m-%d). It stands in for Airflow's constraints file"
  echo "# (https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-3.11.txt),"
  echo "# which cannot be downloaded here: docs/AIRFLOW.md. Regenerate it with: bash infra/airflow/lock.sh"
  "$work/venv/bin/python" -m pip freeze --all --exclude-editable | grep -v -E '^(pip|setuptools|wheel)=='
} > "$LOCK"
echo "wrote $LOCK ($(grep -vc '^#' "$LOCK") packages)"
