"""The tracker's PostgreSQL maintenance pass run on its own, outside the tracker process (the daily Airflow
DAG runs it): `make tracker-maintain [ARGS=--dry-run]`.

    python -m tracker.maintain              day partitions past TRACKER_RETENTION_DAYS dropped, the coming
                                            TRACKER_PARTITIONS_AHEAD_DAYS days' created (tracker.store.maintain)
    python -m tracker.maintain --dry-run    what it would drop and create; changes nothing

The same pass the tracker runs every TRACKER_MAINTENANCE_INTERVAL_S; both at once is safe (CREATE/DROP ...
IF EXISTS, each a short transaction of its own; a writer whose partition went away creates it again). The
schema is migrated first, so it works on a database the tracker has not started on yet. Prints what it did;
exit 0 when done, 1 when PostgreSQL refused, 2 on a bad argument.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import psycopg

from . import store
from .settings import TrackerConfig

logger = logging.getLogger(__name__)

# The tracker's own declarations of what this command reads (not declared again): their variables, bounds,
# messages and flags are the tracker's.
USED = ("database_url", "postgres_port", "retention_days", "partitions_ahead_days")


@dataclass(frozen=True)
class Plan:
    """What a pass does (or, dry run, would do) as of ``today``."""
    today: date
    oldest_kept: date | None
    drop: list[str]
    create: list[str]
    kept: list[date]

    def lines(self, retention_days: int, dry_run: bool) -> list[str]:
        verb = ("would drop", "would create") if dry_run else ("dropped", "created")
        keep = (f"keeps days from {self.oldest_kept} on (TRACKER_RETENTION_DAYS={retention_days})"
                if self.oldest_kept else "keeps every day (TRACKER_RETENTION_DAYS=0)")
        out = [f"retention {keep}"]
        out.append(f"{verb[0]} {len(self.drop)} partition(s)" + (f": {', '.join(self.drop)}" if self.drop else ""))
        out.append(f"{verb[1]} {len(self.create)} partition(s)" + (f": {', '.join(self.create)}" if self.create else ""))
        if self.kept:
            out.append(f"partitions {'after' if dry_run else 'now'}: {len(self.kept)}, {self.kept[0]} .. {self.kept[-1]}")
        else:
            out.append("partitions now: none")
        return out


def plan(existing: list[date], retention_days: int, ahead_days: int, today: date) -> Plan:
    """The pass's effect on a plain partitioned table, computed from the partitions it has (pure)."""
    oldest = store.oldest_kept_day(retention_days, today)
    drop = [d for d in existing if oldest is not None and d < oldest]
    wanted = [today + timedelta(days=n) for n in range(ahead_days + 1)]
    create = [d for d in wanted if d not in existing]
    kept = sorted((set(existing) - set(drop)) | set(create))
    return Plan(today, oldest, [store.partition_name(d) for d in drop], [store.partition_name(d) for d in create], kept)


def has_positions(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('positions') IS NOT NULL").fetchone()[0]


def run(config: TrackerConfig, dry_run: bool = False, today: date | None = None) -> Plan:
    """One pass (or its plan, dry run) on config.database; the plan says what was dropped and created."""
    today = today or datetime.now(timezone.utc).date()
    with store.connect(config.database, "tracker-maintain") as conn:
        if dry_run:
            if not has_positions(conn):
                return Plan(today, store.oldest_kept_day(config.retention_days, today), [], [], [])
            if store.is_hypertable(conn):
                return _hypertable_plan(conn, config, today)
            return plan(store.partitions(conn), config.retention_days, config.partitions_ahead_days, today)
        applied = store.migrate(conn)
        if applied:
            logger.info("applied migrations %s", ", ".join(applied))
        if store.is_hypertable(conn):
            dropped = store.maintain(conn, config.retention_days, config.partitions_ahead_days, today)
            return Plan(today, store.oldest_kept_day(config.retention_days, today), dropped, [], [])
        before = store.partitions(conn)
        dropped = store.maintain(conn, config.retention_days, config.partitions_ahead_days, today)
        after = store.partitions(conn)
        created = [store.partition_name(d) for d in after if d not in before]
        return Plan(today, store.oldest_kept_day(config.retention_days, today), dropped, created, after)


def _hypertable_plan(conn: psycopg.Connection, config: TrackerConfig, today: date) -> Plan:
    """TimescaleDB (docker-compose): the chunks drop_chunks would drop; chunks are made as rows arrive."""
    oldest = store.oldest_kept_day(config.retention_days, today)
    chunks = [] if oldest is None else [r[0] for r in conn.execute(
        "SELECT show_chunks('positions', older_than => %s::timestamptz)", (store.day_start(oldest),))]
    return Plan(today, oldest, [str(c) for c in chunks], [], [])


def main(argv: list[str] | None = None) -> int:
    from pipeline_common.logs import configure_logging
    from pipeline_common.settings import ConfigError

    parser = argparse.ArgumentParser(prog="python -m tracker.maintain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print what it would drop and create; change nothing")
    declared = dict(TrackerConfig.settings())
    group = parser.add_argument_group("settings (the tracker's)")
    for name in USED:
        s = declared[name]
        flag = s.flag if isinstance(s.flag, str) and s.flag.startswith("--") else \
            "--" + s.env.removeprefix(TrackerConfig.ENV_PREFIX).lower().replace("_", "-")
        if s.flag is None:
            continue  # POSTGRES_PORT has no flag in the tracker either
        group.add_argument(flag, dest=name, type=type(s.default) if s.default is not None else str, default=None,
                           metavar=s.metavar or s.env, help=f"{s.help} [{s.env}, default {s.default_text()}]"
                           .replace("`", "").replace("%", "%%"))
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = TrackerConfig.from_env(**{n: getattr(args, n, None) for n in USED})
    except ConfigError as exc:
        print(f"tracker-maintain: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(config, dry_run=args.dry_run)
    except psycopg.Error as exc:
        logger.exception("tracker maintenance failed")
        print(f"tracker-maintain: {type(exc).__name__}: {str(exc).strip()}", file=sys.stderr)
        return 1
    for line in result.lines(config.retention_days, args.dry_run):
        print(f"tracker-maintain: {'(dry run) ' if args.dry_run else ''}{line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
