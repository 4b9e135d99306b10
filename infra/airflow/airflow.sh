#!/usr/bin/env bash
# The project's Airflow: .venv-airflow's `airflow` with this repository's DAGs (dags/), its home (metadata
# database, logs, generated password) under .state/airflow, and its API server and UI on 127.0.0.1 only.
# `make airflow`, `make dags-test` and tests/integration/test_dags.py all run airflow through this file, so
# they agree on the home and the DAGs folder. Anything set in the environment first wins (AIRFLOW_HOME,
# AIRFLOW__API__PORT, ...: Airflow's own variable names).
#
#   bash infra/airflow/airflow.sh standalone        scheduler + API server/UI + triggerer + DAG processor
#   bash infra/airflow/airflow.sh dags list         any other airflow command
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AIRFLOW_BIN="$ROOT/.venv-airflow/bin/airflow"
[[ -x "$AIRFLOW_BIN" ]] || { echo "error: $AIRFLOW_BIN missing: run make setup-airflow" >&2; exit 1; }

# `airflow standalone` starts its parts as `airflow <part>`, found on PATH.
export PATH="$ROOT/.venv-airflow/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.state/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Task processes report to the API server's execution API: the same host and port, or they cannot start.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT/execution/}"
# Standalone's LocalExecutor starts one worker process per slot (32 by default): 4 is plenty for one DAG that
# runs at most two tasks at once, on a 2-core machine shared with the stack.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# New DAG files show up within 30 s rather than Airflow's default 5 minutes.
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
# The tasks' own log lines (the project's loggers) reach the task log as they are; the tasks run in the
# project's directory, where relative paths such as KAFKA_CLIENT_LOG point.
cd "$ROOT"
mkdir -p "$AIRFLOW_HOME"

if [[ "${1:-}" == "standalone" ]]; then
  url="http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"
  passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  # Once the UI answers, say where it is and how to log in (Airflow's simple auth manager generates the
  # password on its first start and keeps it in $passwords); standalone's own output scrolls past it.
  (
    for _ in $(seq 1 300); do
      if curl -fsS -o /dev/null "$url/api/v2/monitor/health" 2>/dev/null && [[ -s "$passwords" ]]; then
        login=$("$ROOT/.venv-airflow/bin/python" -c 'import json, sys; d = json.load(open(sys.argv[1])); u = sorted(d)[0]; print(f"user {u}, password {d[u]}")' "$passwords")
        printf '\n==> Airflow UI: %s   login: %s   (password kept in %s)\n\n' "$url" "$login" "$passwords" >&2
        exit 0
      fi
      sleep 2
    done
    echo "==> Airflow UI did not answer at $url within 10 minutes" >&2
  ) &
fi
exec "$AIRFLOW_BIN" "$@"
