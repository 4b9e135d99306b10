"""flightpipe_daily: the batch side of one UTC day, scheduled (docs/AIRFLOW.md).

A run's logical date is the UTC day it works on (its data interval: [midnight, next midnight)); a scheduled
run starts once that day is over. `airflow dags test flightpipe_daily 2026-12-06` and `airflow backfill
create` work on the days they are given. In order:

    compact_day         the day's small files of the positions table merged      make lake-maintain ARGS="--day D --steps compact"
    build_gold          positions_clean and the gold_* tables of the day          make lake-gold DAY=D
    quality_checks      lake vs PostgreSQL vs Kafka, duplicates, values, freshness  make lake-quality DAY=D
    expire_snapshots    old snapshots of the lake's tables expired, unreferenced files swept   make lake-maintain
    drop_old_partitions the tracker's PostgreSQL partitions past TRACKER_RETENTION_DAYS dropped  make tracker-maintain

Each task runs exactly the project's command that the make target runs, so a task fails when the command
does (exit code) and its log is the command's output; each is idempotent: a rerun of a day replaces that
day's tables with the same rows, compacts nothing new, expires and drops only what is past its limit.
Settings come from the environment as for those commands (LAKE_*, DATABASE_URL, AWS_*, KAFKA_*, TRACKER_*).

The commands run with the Python of the Airflow Variable `flightpipe_python`, by default the interpreter that
parses this file: locally .venv-airflow, into which `make setup-airflow` installs the project. On Amazon MWAA,
whose Airflow pins older SQLAlchemy and FastAPI than the project, the project lives in a virtualenv of its own
and the variable points there (docs/AIRFLOW.md). This file imports nothing of the project, so it parses
anywhere Airflow 3 does.
"""
from __future__ import annotations

import shlex
import sys
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag

try:  # Airflow >= 3.1 exports the timetables from its SDK; 3.0 (MWAA's 3.0.6) has them in core only
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable

DAG_ID = "flightpipe_daily"
# A fixed start, as Airflow wants it: a start computed at parse time (pendulum.today() - N days) moves every
# midnight, which makes a new DAG version each day and a "runtime varying value" warning in the UI. Catchup
# (once the DAG is unpaused) runs every day from here on, one at a time; a day without positions takes a few
# seconds per task. Days before it: `airflow backfill create` (docs/AIRFLOW.md).
START_DATE = pendulum.datetime(2026, 12, 4, tz="UTC")

# The interpreter of the project's commands, looked up when a task runs (Airflow Variable, or the environment
# variable AIRFLOW_VAR_FLIGHTPIPE_PYTHON as MWAA's startup script can set it).
PYTHON = "{{ var.value.get('flightpipe_python', %s) }}" % repr(shlex.quote(sys.executable))
# The run's UTC day: its logical date; a manual run without one (Airflow 3 allows it) gets the interval Airflow
# infers for it, the last whole day.
DAY = "{{ (logical_date or data_interval_start).in_timezone('UTC').strftime('%Y-%m-%d') }}"
# The silver and gold tables lakehouse.gold writes (tests/unit/test_dags_commands.py keeps this list equal to
# lakehouse.gold.SCHEMAS); their snapshots are expired beside the positions table's.
SILVER_AND_GOLD = ("positions_clean", "gold_daily_country", "gold_daily_airline", "gold_daily_category",
                   "gold_hourly", "gold_top_categories_per_country")

DEFAULT_ARGS = {
    "owner": "flightpipe",
    # A catalog commit refused because the archiver committed meanwhile, a restarting endpoint or database:
    # worth another try a little later. A failed data-quality check is not (see quality_checks).
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
}


def command(*args: str) -> str:
    """`<python> -m <module> <args>`: one of the project's commands, as its make target runs it."""
    return " ".join([PYTHON, "-m", *args])


@dag(
    dag_id=DAG_ID,
    description="Per UTC day: compaction, silver and gold tables, data-quality checks, snapshot expiry, "
                "PostgreSQL retention",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    # One day at a time: two days' runs would commit to the same Iceberg tables at once, and the lake's
    # tables refuse a commit that meets another (commit.retry.num-retries=0) rather than rebase it.
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flightpipe", "lake", "daily"],
    doc_md=__doc__,
)
def flightpipe_daily():
    # The day's small files merged first, so the gold job reads a few large files.
    compact_day = BashOperator(task_id="compact_day",
                               bash_command=command("infra.lake.maintain", "--day", DAY, "--steps", "compact"))
    build_gold = BashOperator(task_id="build_gold", bash_command=command("infra.lake.gold", "--day", DAY))
    # Bad data stays bad on a second try: no retry. The command prints every check (ok, FAILED, skipped) with
    # expected and found, and exits 1 naming each failing one; that is the task's log.
    quality_checks = BashOperator(task_id="quality_checks", retries=0,
                                  bash_command=command("lakehouse.quality", "--day", DAY))
    # Expiry alone deletes no file; the sweep removes what only the expired snapshots referenced.
    expire_snapshots = BashOperator(
        task_id="expire_snapshots",
        bash_command=command("infra.lake.maintain", "--steps", "expire,sweep") + " && " +
        command("infra.lake.maintain", "--steps", "expire,sweep", "--tables", ",".join(SILVER_AND_GOLD)))
    # Retention as of now, not of the run's day: the pass the tracker itself runs every few minutes.
    drop_old_partitions = BashOperator(task_id="drop_old_partitions", bash_command=command("tracker.maintain"))

    # Expiry and retention wait for the checks: a day whose lake and PostgreSQL disagree keeps its PostgreSQL
    # partition and the lake's time travel while someone looks.
    compact_day >> build_gold >> quality_checks >> [expire_snapshots, drop_old_partitions]


flightpipe_daily()
