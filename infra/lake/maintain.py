"""The lake's maintenance: `make lake-maintain [ARGS=...]`.

    python -m infra.lake.maintain                          compaction, snapshot expiry, orphan sweep of positions
    python -m infra.lake.maintain --day 2026-12-06         compaction of that UTC day only (then expiry and sweep)
    python -m infra.lake.maintain --steps expire,sweep     some steps only
    python -m infra.lake.maintain --dry-run                what the sweep would delete; changes nothing
    python -m infra.lake.maintain --tables positions,gold_hourly   tables of the namespace (default LAKE_TABLE)

Safe beside a running archiver: every snapshot it makes carries the archiver's Kafka offsets, and a commit
that meets another is refused rather than rebased (src/lakehouse/maintenance.py says how). Prints one line
per step and table: files before/after and bytes, snapshots expired, orphans removed. Exit 0 when every
step ran, 1 when one could not (the line says which), 2 on a bad argument.
"""
from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.settings import LakeSettings
from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

logger = logging.getLogger("infra.lake.maintain")

STEPS = ("compact", "expire", "sweep")


def steps_argument(text: str) -> tuple[str, ...]:
    steps = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise argparse.ArgumentTypeError(f"{text!r}: say some of {','.join(STEPS)}")
    return steps


def main(argv: list[str] | None = None) -> int:
    from infra.lake.gold import day_argument
    from lakehouse.maintenance import MaintenanceSettings

    parser = argparse.ArgumentParser(prog="python -m infra.lake.maintain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", type=day_argument, metavar="YYYY-MM-DD",
                        help="compact this UTC day only (default: every day with small files)")
    parser.add_argument("--steps", type=steps_argument, default=None, metavar="STEP[,STEP]",
                        help=f"which steps, in their fixed order (default {','.join(STEPS)})")
    parser.add_argument("--tables", type=lambda t: [n.strip() for n in t.split(",") if n.strip()],
                        metavar="NAME[,NAME]", help="the tables of LAKE_NAMESPACE to maintain (default LAKE_TABLE)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only report what the orphan sweep would delete (no compaction, no expiry)")
    LakeSettings.add_flags(parser.add_argument_group("lake settings"))
    MaintenanceSettings.add_flags(parser.add_argument_group("maintenance settings"))
    args = parser.parse_args(argv)
    configure_logging()
    try:
        lake = LakeSettings.from_args(args)
        settings = MaintenanceSettings.from_args(args)
    except ConfigError as exc:
        print(f"lake-maintain: configuration error: {exc}", file=sys.stderr)
        return 2
    from lakehouse.athena import publish_quietly
    from lakehouse.catalog import load_catalog
    from lakehouse.maintenance import maintain

    if lake.maintained_by_s3_tables and args.steps is None:
        print("lake-maintain: S3 Tables maintains this table itself (compaction, snapshot expiry, unreferenced-file "
              "removal: its table bucket's maintenance configuration); nothing to do. --steps runs a step anyway.")
        return 0
    steps = args.steps or STEPS
    failed = False
    try:
        catalog = load_catalog(lake)
    except Exception as exc:
        print(f"lake-maintain: cannot open the catalog: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name in args.tables or [lake.table]:
        try:
            table = catalog.load_table((lake.namespace, name))
            report = maintain(table, settings, day=args.day, steps=steps, dry_run=args.dry_run)
        except Exception as exc:  # one table's trouble is reported and the next table still gets its turn
            logger.exception("maintenance of %s.%s failed", lake.namespace, name)
            print(f"lake-maintain: {lake.namespace}.{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
            continue
        for line in report.lines():
            print(f"lake-maintain: {line}")
        # Compaction and the sweep replace and delete files: Athena's published copy must name the new ones.
        publish_quietly(lake, catalog.load_table((lake.namespace, name)))
        failed = failed or any(r.error for r in (report.compaction or [])) or bool(
            report.expiry and report.expiry.error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
