"""The Airflow DAGs of dags/ on the real stack, through the project's own Airflow (.venv-airflow, made by `make
setup-airflow`, which .ci/run calls: Airflow 3 cannot live in the main virtualenv, docs/AIRFLOW.md). Airflow runs
as a subprocess (infra/airflow/airflow.sh) with a home of the test's own, so a running `make airflow` is left
alone.

- every DAG file imports, with the intended schedule, catchup and tasks (Airflow's own DagBag);
- `make dags-test DAY=...`'s script (infra/airflow/dags_test.sh: `airflow dags test` of each DAG) for a day
  whose positions are in a fresh Kafka topic, PostgreSQL (an isolated schema) and a fresh lake namespace (the
  stack's catalog and S3) runs every task to success, and the gold tables then hold that day;
- a duplicate row planted in the lake fails quality_checks, and the run, with the check, expected and found in
  the task's log; the tasks after it do not run, and the script exits 1;
- a DAG file that does not import stops the script with exit 1 and the error, before any run."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from archiver.batch import positions_table
from lake_support import fresh_lake
from lakehouse.catalog import OFFSETS_PROPERTY, encode_offsets
from lakehouse.settings import sqlalchemy_url
from tracker_support import fresh_topic, isolated_schema, state, stored_positions

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SH = ROOT / "infra" / "airflow" / "airflow.sh"
AIRFLOW_PY = ROOT / ".venv-airflow" / "bin" / "python"
DAGS_TEST = ROOT / "infra" / "airflow" / "dags_test.sh"   # what `make dags-test DAY=...` runs
DAILY_TASKS = {"compact_day", "build_gold", "quality_checks", "expire_snapshots", "drop_old_partitions"}
# Yesterday (UTC): a past day, inside PostgreSQL's retention, so every check of the day applies.
DAY = datetime.now(timezone.utc).date() - timedelta(days=1)
AIRCRAFT, TICKS = 12, 10

pytestmark = pytest.mark.skipif(not AIRFLOW_PY.exists(),
                                reason="the Airflow virtualenv is missing: make setup-airflow (.ci/run runs it)")


def airflow(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(AIRFLOW_SH), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def dags_test(env: dict, day: date) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DAGS_TEST), day.isoformat()], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    """A fresh Airflow home (SQLite metadata database) for this module."""
    home = tmp_path_factory.mktemp("airflow-home")
    done = airflow(dict(os.environ, AIRFLOW_HOME=str(home)), "db", "migrate", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


_DAGBAG = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=%r)
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    tt = dag.timetable
    out["dags"][dag_id] = {
        "timetable": type(tt).__name__, "expression": tt.expression, "timezone": str(tt.timezone),
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids)} for t in dag.tasks},
    }
print(json.dumps(out))
"""


def test_every_dag_imports_with_its_schedule_and_catchup(airflow_home):
    # WHEN Airflow's DagBag parses dags/ in the Airflow virtualenv
    done = subprocess.run([str(AIRFLOW_PY), "-c", _DAGBAG % str(ROOT / "dags")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, AIRFLOW_HOME=str(airflow_home),
                                                                      AIRFLOW__CORE__LOAD_EXAMPLES="False"))
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])

    # THEN no file fails to import, and the daily DAG is @daily in UTC with catchup, one run at a time
    assert bag["import_errors"] == {}
    assert set(bag["dags"]) == {"flightpipe_daily"}
    daily = bag["dags"]["flightpipe_daily"]
    assert (daily["timetable"], daily["expression"], daily["timezone"]) == ("CronDataIntervalTimetable", "0 0 * * *",
                                                                          "UTC")
    assert daily["catchup"] is True and daily["max_active_runs"] == 1
    assert datetime.fromisoformat(daily["start_date"]) == datetime(2026, 12, 4, tzinfo=timezone.utc)
    tasks = daily["tasks"]
    assert set(tasks) == DAILY_TASKS
    assert tasks["build_gold"]["upstream"] == ["compact_day"]
    assert tasks["quality_checks"]["upstream"] == ["build_gold"]
    assert tasks["expire_snapshots"]["upstream"] == tasks["drop_old_partitions"]["upstream"] == ["quality_checks"]
    # a transient failure is retried; bad data is not (it would fail the same way)
    assert {t: v["retries"] for t, v in tasks.items()} == {**{t: 2 for t in DAILY_TASKS}, "quality_checks": 0}


@pytest.fixture(scope="module")
def day_sources(stack, database_url):
    """(environment for Airflow's tasks, lake settings, catalog, positions of DAY): the same positions of DAY in a
    fresh topic, an isolated PostgreSQL schema and a fresh lake namespace (one archiver-like commit)."""
    t0 = datetime.combine(DAY, time(9, 0), tzinfo=timezone.utc).timestamp()
    values = [state(n, tick, t0) for n in range(AIRCRAFT) for tick in range(TICKS)]
    with fresh_topic(stack.bootstrap, partitions=2) as topic, isolated_schema(database_url) as db, \
            fresh_lake(database_url) as (lake, catalog, table):
        positions = stored_positions(stack.bootstrap, topic, db, values, "it-dags")
        rows, _ = positions_table(positions, datetime.now(timezone.utc))
        ends: dict[int, int] = {}
        for p in positions:
            ends[p.kafka_partition] = max(ends.get(p.kafka_partition, 0), p.kafka_offset + 1)
        table.append(rows, snapshot_properties={OFFSETS_PROPERTY: encode_offsets(topic, ends)})
        # The tasks' settings, as `make` would pass them: the test's schema, topic and namespace; the catalog
        # stays in the database's default schema, where fresh_lake created the namespace.
        env = dict(os.environ, DATABASE_URL=db, LAKE_CATALOG_URI=sqlalchemy_url(database_url),
                   LAKE_NAMESPACE=lake.namespace, KAFKA_TOPIC=topic, KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap)
        yield env, lake, catalog, positions


def task_states(airflow_home: Path, logical_day: date) -> dict[str, str]:
    """{task_id: state} of the newest flightpipe_daily run of ``logical_day``, from Airflow's own database."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'flightpipe_daily' AND logical_date LIKE ? "
                            "ORDER BY id DESC LIMIT 1", (f"{logical_day.isoformat()}%",)).fetchone()[0]
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'flightpipe_daily' AND run_id = ?",
                          (run_id,)).fetchall()
    return dict(rows)


def test_daily_dag_runs_a_day_then_fails_its_quality_task_on_a_planted_duplicate(airflow_home, day_sources):
    env, lake, catalog, positions = day_sources
    env = dict(env, AIRFLOW_HOME=str(airflow_home))

    # WHEN the DAGs run for DAY, as `make dags-test DAY=...` runs them
    ok = dags_test(env, DAY)

    # THEN every task succeeded, and the lake's gold tables hold the day's positions
    assert ok.returncode == 0, ok.stdout[-6000:] + ok.stderr[-3000:]
    assert f"dags-test: every DAG ran for {DAY}: flightpipe_daily" in ok.stdout
    assert task_states(airflow_home, DAY) == {t: "success" for t in DAILY_TASKS}
    daily = catalog.load_table((lake.namespace, "gold_daily_country")).scan().to_arrow().to_pylist()
    assert {r["day"] for r in daily} == {DAY}
    assert sum(r["positions"] for r in daily) == AIRCRAFT * TICKS
    assert catalog.load_table((lake.namespace, "positions_clean")).scan().to_arrow().num_rows == AIRCRAFT * TICKS

    # GIVEN a second row of one key appended to the lake (as a doubled archiver commit would leave it)
    first = positions[0]
    copy = first._replace(kafka_offset=first.kafka_offset + 1_000_000, callsign="DUP")
    rows, _ = positions_table([copy], datetime.now(timezone.utc))
    catalog.load_table(lake.identifier).append(rows)

    # WHEN the day runs again
    bad = dags_test(env, DAY)

    # THEN make dags-test fails, the run failed at quality_checks, whose log names the check with expected and found; what waits for the
    # checks (snapshot expiry, PostgreSQL retention) did not run
    assert bad.returncode == 1 and "dags-test: failed: flightpipe_daily" in bad.stderr
    states = task_states(airflow_home, DAY)
    assert states["quality_checks"] == "failed", states
    assert states["expire_snapshots"] == states["drop_old_partitions"] == "upstream_failed", states
    log = bad.stdout + bad.stderr
    assert "quality_checks" in log and "returned a non-zero exit code 1" in log
    assert "duplicates.lake: expected 0, found 1" in log
    key = f"{first.icao24} {first.time_position.isoformat().replace('+00:00', 'Z')} x2"
    assert key in log


def test_dags_test_fails_on_a_dag_file_that_does_not_import(airflow_home, tmp_path):
    # GIVEN a DAGs folder with a file that raises on import
    (tmp_path / "broken_dag.py").write_text("from airflow.sdk import dag\nraise RuntimeError('broken on purpose')\n")
    env = dict(os.environ, AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path))
    # WHEN make dags-test's script runs
    done = dags_test(env, DAY)
    # THEN it stops with exit 1, showing the file and the error, before running anything
    assert done.returncode == 1
    assert "broken on purpose" in done.stderr and "does not import" in done.stderr
    assert "airflow dags test" not in done.stdout
