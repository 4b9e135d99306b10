#!/usr/bin/env bash
# make dags-test [DAY=YYYY-MM-DD]: every DAG of dags/ imports without error, then each runs once for one UTC day
# (default today: what `make demo ARGS=--keep-stack` left in the stack) with `airflow dags test`, in this
# process, against the running stack (Kafka, the AWS endpoint with the lake's S3, PostgreSQL).
# Exit 1 when a DAG file does not import or a run fails (a task failed); the failing task's log is above.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AIRFLOW=("bash" "$ROOT/infra/airflow/airflow.sh")
day=${1:-$(date -u +%Y-%m-%d)}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The metadata database (SQLite under the Airflow home) made or brought up to date; quick when it is.
"${AIRFLOW[@]}" db migrate >"$out" 2>&1 || { cat "$out" >&2; echo "dags-test: airflow db migrate failed" >&2; exit 1; }

"${AIRFLOW[@]}" dags list-import-errors --local -o plain >"$out" 2>&1
if ! grep -q "No data found" "$out"; then
  cat "$out" >&2
  echo "dags-test: a DAG file of dags/ does not import (above)" >&2
  exit 1
fi
dag_ids=$("${AIRFLOW[@]}" dags list --local -o plain 2>/dev/null | awk 'NR > 1 && $1 ~ /^flightpipe_/ {print $1}')
[[ -n "$dag_ids" ]] || { echo "dags-test: no flightpipe_* DAG found in dags/" >&2; exit 1; }

failed=()
for dag_id in $dag_ids; do
  echo "==> airflow dags test $dag_id $day"
  started=$(date +%s)
  if "${AIRFLOW[@]}" dags test "$dag_id" "$day"; then
    echo "==> $dag_id $day: success ($(( $(date +%s) - started )) s)"
  else
    echo "==> $dag_id $day: FAILED ($(( $(date +%s) - started )) s)" >&2
    failed+=("$dag_id")
  fi
done
if (( ${#failed[@]} )); then
  echo "dags-test: failed: ${failed[*]}" >&2
  exit 1
fi
echo "dags-test: every DAG ran for $day: $(echo $dag_ids)"
