"""Silver and gold tables of one UTC day from the lake: `make lake-gold DAY=2026-12-06`.

    python -m infra.lake.gold --day 2026-12-06        positions_clean and the gold_* tables for that day
    python -m infra.lake.gold --day yesterday         the UTC day before today (what a daily schedule runs)

DuckDB reads the day from the positions table, PyIceberg replaces that day in each output table of the same
namespace (src/lakehouse/gold.py, the SQL and its definitions in src/lakehouse/gold.sql). Idempotent: a
rerun of a day gives the same tables. Exit 0 when every table was written, 2 on a bad argument, 1 when
the lake cannot be read or written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime, timedelta, timezone

from lakehouse.gold import parse_day
from lakehouse.settings import LakeSettings
from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

logger = logging.getLogger("infra.lake.gold")


def day_argument(text: str, today: date | None = None) -> date:
    """'YYYY-MM-DD', 'today' or 'yesterday' (UTC) -> date."""
    today = today or datetime.now(timezone.utc).date()
    words = {"today": today, "yesterday": today - timedelta(days=1)}
    if text.strip().lower() in words:
        return words[text.strip().lower()]
    try:
        return parse_day(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or today / yesterday, UTC)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lake.gold", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", required=True, type=day_argument, metavar="YYYY-MM-DD",
                        help="the UTC day to (re)build")
    LakeSettings.add_flags(parser.add_argument_group("settings"))
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = LakeSettings.from_args(args)
    except ConfigError as exc:
        print(f"lake-gold: configuration error: {exc}", file=sys.stderr)
        return 2
    from lakehouse.gold import build_day  # DuckDB and PyIceberg: only once the arguments are good

    try:
        writes = build_day(settings, args.day)
    except Exception as exc:  # catalog, endpoint or extensions: one line that says which, and the log has the rest
        logger.exception("lake-gold failed for %s", args.day)
        print(f"lake-gold: {args.day}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for write in writes:
        print(f"lake-gold: {args.day} {settings.namespace}.{write.table}: {write.rows} rows "
              f"(snapshot {write.snapshot_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
