"""flightpipe_daily: the batch side of one UTC day, scheduled (docs/AIRFLOW.md).

A run's logical date is the UTC day it works on (its data interval: [midnight, next midnight)); a scheduled
run starts once that day is over. `airflow dags test flightpipe_daily 2026-12-06` and `airflow backfill
create` with dates work on those days. In order:

    compact_day         the day's small files of the positions table merged (lakehouse.maintenance.compact)
    build_gold          positions_clean and the gold_* tables of the day (lakehouse.gold.build_day)
    quality_checks      lake vs PostgreSQL vs Kafka, duplicates, values, freshness (lakehouse.quality.run_checks)
    expire_snapshots    old snapshots of the lake's tables expired, then the files only they held swept
    drop_old_partitions the tracker's PostgreSQL partitions past TRACKER_RETENTION_DAYS dropped (tracker.maintain)

Each task calls the project's own code, the same as `make lake-maintain`, `make lake-gold`, `make
lake-quality` and `make tracker-maintain`, and each is idempotent: a rerun of a day replaces that day's
tables with the same rows, compacts nothing new, expires and drops only what is past its limit. Settings come
from the environment as for those commands (LAKE_*, DATABASE_URL, AWS_*, KAFKA_*, TRACKER_RETENTION_DAYS).
The imports of the project sit inside the tasks, so parsing this file (every 30 s) stays cheap.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import pendulum
from airflow.sdk import dag, task

try:  # Airflow >= 3.1 exports the timetables from its SDK; 3.0 (MWAA's 3.0.6) has them in core only
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable

# Airflow imports a DAG file under a made-up module name; this one reads well in the task log.
logger = logging.getLogger("flightpipe.dags.daily")

DAG_ID = "flightpipe_daily"
# Catchup starts this many days back, not at a date written here: a fresh clone (or a new MWAA environment)
# builds the last few days, what a session's lake and PostgreSQL's retention hold, instead of every day since
# the code was written. The start moves once a day, at midnight UTC; older days: `airflow backfill create`.
CATCHUP_DAYS = 3
START_DATE = pendulum.today("UTC").subtract(days=CATCHUP_DAYS)

DEFAULT_ARGS = {
    "owner": "flightpipe",
    # A catalog commit refused because the archiver committed meanwhile, a restarting endpoint or database:
    # worth another try a little later. A failed data-quality check is not (see quality_checks).
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
}


def utc_day(logical_date: datetime | None, data_interval_start: datetime) -> date:
    """The UTC day a run works on: its logical date (a scheduled or backfilled run's equals its data interval's
    start; `airflow dags test DAG DAY` gives DAY). A manual run without a logical date (Airflow 3 allows it)
    gets the interval Airflow infers for it: the last whole day."""
    return (logical_date or data_interval_start).astimezone(timezone.utc).date()


def _lake():
    from lakehouse.catalog import load_catalog
    from lakehouse.settings import LakeSettings

    settings = LakeSettings.from_env()
    return settings, load_catalog(settings)


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
    @task(task_id="compact_day")
    def compact_day(logical_date=None, data_interval_start=None) -> int:
        """Merge the day's small files of the positions table first, so the gold job reads a few files."""
        from lakehouse.maintenance import MaintenanceSettings, compact

        day = utc_day(logical_date, data_interval_start)
        lake, catalog = _lake()
        reports = compact(catalog.load_table(lake.identifier), MaintenanceSettings.from_env(), day)
        for report in reports:
            logger.info("%s: %s", lake.table, report.line())
        if not reports:
            logger.info("%s: no small files to merge on %s", lake.table, day)
        failed = [r.line() for r in reports if r.error]
        if failed:
            raise RuntimeError("compaction not done: " + "; ".join(failed))
        return sum(r.files_before for r in reports)

    @task(task_id="build_gold")
    def build_gold(logical_date=None, data_interval_start=None) -> dict[str, int]:
        from lakehouse.gold import build_day

        day = utc_day(logical_date, data_interval_start)
        lake, catalog = _lake()
        writes = build_day(lake, day, catalog=catalog)
        for write in writes:
            logger.info("%s %s.%s: %d rows (snapshot %s)", day, lake.namespace, write.table, write.rows,
                        write.snapshot_id)
        return {write.table: write.rows for write in writes}

    # Bad data stays bad on a second try: the task fails at once, with every failing check's name, expected
    # and found values in its log and in the exception the UI shows.
    @task(task_id="quality_checks", retries=0)
    def quality_checks(logical_date=None, data_interval_start=None) -> dict[str, bool]:
        from lakehouse.quality import require_ok, run_checks

        day = utc_day(logical_date, data_interval_start)
        results = run_checks(day)
        for result in results:
            logger.info("quality %s: %s", day, result.line())
        require_ok(results, day)  # QualityCheckFailed naming each failing check
        return {result.name: result.ok for result in results}

    @task(task_id="expire_snapshots")
    def expire_snapshots() -> dict[str, int]:
        """Expiry of the positions table's and the silver/gold tables' old snapshots, then the sweep of the
        files no live snapshot references any more (expiry alone deletes no file)."""
        from lakehouse.gold import SCHEMAS
        from lakehouse.maintenance import MaintenanceSettings, maintain

        lake, catalog = _lake()
        settings = MaintenanceSettings.from_env()
        existing = {name for _, name in catalog.list_tables(lake.namespace)}
        expired, problems = {}, []
        for name in [lake.table, *(n for n in SCHEMAS if n in existing)]:
            report = maintain(catalog.load_table((lake.namespace, name)), settings, steps=("expire", "sweep"))
            for line in report.lines():
                logger.info("%s", line)
            if report.expiry and report.expiry.error:
                problems.append(f"{name}: {report.expiry.error}")
            expired[name] = report.expiry.expired if report.expiry else 0
        if problems:
            raise RuntimeError("snapshot expiry not done: " + "; ".join(problems))
        return expired

    @task(task_id="drop_old_partitions")
    def drop_old_partitions() -> list[str]:
        """PostgreSQL retention as of now (not of the run's day): what the tracker's own maintenance pass does."""
        from tracker import maintain
        from tracker.settings import TrackerConfig

        config = TrackerConfig.from_env()
        plan = maintain.run(config)
        for line in plan.lines(config.retention_days, dry_run=False):
            logger.info("tracker-maintain: %s", line)
        return plan.drop

    # Expiry and retention wait for the checks: a day whose lake and PostgreSQL disagree keeps its
    # PostgreSQL partition and the lake's time travel while someone looks.
    checked = compact_day() >> build_gold() >> quality_checks()
    checked >> [expire_snapshots(), drop_old_partitions()]


flightpipe_daily()
