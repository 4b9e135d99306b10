"""SQL on the lake through Athena: `make lake-athena SQL="SELECT count(*) AS n FROM positions"`.

    python -m infra.lake.athena "SELECT count(*) AS n FROM positions"     a small table on stdout
    python -m infra.lake.athena --json "SELECT ..."                      one JSON array of objects
    echo "SELECT ..." | python -m infra.lake.athena -                    the SQL from stdin
    python -m infra.lake.athena --publish-only                           only publish the tables

StartQueryExecution in catalog LAKE_ATHENA_CATALOG (default `s3tablescatalog/<LAKE_ATHENA_TABLE_BUCKET>`)
and database LAKE_NAMESPACE, so `FROM positions` resolves; waits, then GetQueryResults. With a local
endpoint the lake's tables are published first (src/lakehouse/athena.py), so the answer is the catalog's
current snapshot. Locally the SQL is DuckDB's dialect (MiniStack runs it with DuckDB), on AWS Trino's:
alias every column. Exit 0 with the answer, 2 when Athena refuses or fails the SQL (its reason on
stderr), 1 when Athena or the lake cannot be reached.
"""
from __future__ import annotations

import argparse
import sys
import time

from infra.lake.sql import EXIT_BAD_QUERY, EXIT_NO_LAKE, format_json, format_table


def main(argv: list[str] | None = None) -> int:
    from lakehouse import athena
    from lakehouse.settings import LakeSettings
    from pipeline_common.settings import ConfigError

    parser = argparse.ArgumentParser(prog="python -m infra.lake.athena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", default="", help='the SQL ("-": read it from stdin)')
    parser.add_argument("--json", action="store_true", help="print one JSON array of objects instead of a table")
    parser.add_argument("--max-rows", type=int, default=100, help="rows a table shows (default 100; --json prints all)")
    parser.add_argument("--publish-only", action="store_true",
                        help="publish the lake's tables for Athena and print where; no query")
    parser.add_argument("--no-publish", action="store_true", help="query what was published last, as it is")
    parser.add_argument("--timing", action="store_true", help="say on stderr how long publishing and the query took")
    LakeSettings.add_flags(parser.add_argument_group("settings"))
    args = parser.parse_args(argv)
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    if not sql.strip() and not args.publish_only:
        print('lake-athena: no SQL given (make lake-athena SQL="SELECT count(*) AS n FROM positions")', file=sys.stderr)
        return EXIT_BAD_QUERY
    try:
        settings = LakeSettings.from_args(args)
    except ConfigError as exc:
        print(f"lake-athena: {exc}", file=sys.stderr)
        return EXIT_NO_LAKE
    try:
        if args.publish_only:
            for done in athena.publish(settings):
                print(f"{settings.athena_query_catalog}.{settings.namespace}.{done.table} -> {done.location}"
                      f"{'' if done.changed else ' (already current)'}")
            return 0
        publish_first = False if args.no_publish else None
        started = time.monotonic()
        result = athena.query(settings, sql, publish_first=publish_first)
    except athena.AthenaQueryError as exc:
        hint = ""
        if athena.missing_table(exc.reason) and (args.no_publish or not settings.athena_publishing):
            hint = ("\nthe table may not be published for Athena (MiniStack forgets S3 Tables when it restarts): "
                    "run without --no-publish, or `make lake-athena ARGS=--publish-only` (LAKE_ATHENA_PUBLISH=true "
                    "if it is off); on AWS point LAKE_ATHENA_CATALOG at the table's catalog")
        print(f"lake-athena: Athena {exc.state}: {exc.reason}{hint}", file=sys.stderr)
        return EXIT_BAD_QUERY
    except Exception as exc:  # noqa: BLE001 - the endpoint, the catalog or S3: say which, not a traceback
        reason = (str(exc).strip().splitlines() or [""])[0]
        print(f"lake-athena: cannot query Athena at {athena.endpoint_note()} (catalog "
              f"{settings.athena_query_catalog}, database {settings.namespace}): {type(exc).__name__}: {reason}",
              file=sys.stderr)
        return EXIT_NO_LAKE
    if args.json:
        print(format_json(result.columns, result.rows))
    elif result.columns:
        print(format_table(result.columns, result.rows[:max(args.max_rows, 0)], total=len(result.rows)))
    if args.timing:
        print(f"lake-athena: query {result.query_id}: {result.seconds:.2f} s from StartQueryExecution to the last "
              f"GetQueryResults page, {time.monotonic() - started:.2f} s with publishing", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
