"""SQL on the lake with DuckDB: `make lake-sql SQL="SELECT count(*) FROM positions"`.

    python -m infra.lake.sql "SELECT count(*) FROM positions"          a small table on stdout
    python -m infra.lake.sql --json "SELECT ... "                     one JSON array of objects
    echo "SELECT ..." | python -m infra.lake.sql -                    the SQL from stdin

Each table of the lake's namespace (LAKE_NAMESPACE) is a view of the same name, as of its current
snapshot (src/lakehouse/duck.py). Exit 0 with the answer, 2 when DuckDB refuses the SQL, 1 when the lake
cannot be reached (catalog, endpoint, extensions).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date, datetime, time as dtime
from decimal import Decimal
from typing import Any, Sequence

EXIT_BAD_QUERY = 2
EXIT_NO_LAKE = 1


def cell_text(value: Any) -> str:
    """One value as a person reads it: NULL for None, UTC timestamps without microseconds noise."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.10g}"  # float32 columns arrive widened: 10972.79 rather than 10972.7900390625
    if isinstance(value, datetime):
        text = value.isoformat(sep=" ")
        return text.replace("+00:00", "Z") if value.utcoffset() is not None and not value.utcoffset() else text
    return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    """A small aligned text table (numbers right-aligned), with a row count line; `total` > len(rows)
    says how many rows were left out."""
    cells = [[cell_text(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    right = [bool(rows) and all(_numeric(row[i]) or row[i] is None for row in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    total = len(rows) if total is None else total
    shown = f"{total} row{'s' if total != 1 else ''}"
    if total > len(rows):
        shown += f" ({total - len(rows)} not shown; --max-rows)"
    return "\n".join(out + [f"({shown})"])


def json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value == value.to_integral_value() or abs(value) < 1e15 else str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def format_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return json.dumps([{c: json_value(v) for c, v in zip(columns, row)} for row in rows], ensure_ascii=False)


def run_query(con, sql: str) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the last statement of `sql`. Through Arrow, not fetchall(): DuckDB's own
    conversion of a timestamptz needs pytz, which the project does not install."""
    result = con.execute(sql)
    if result.description is None:
        return [], []
    table = result.fetch_arrow_table()
    columns = list(table.column_names)
    rows = [list(r) for r in zip(*(col.to_pylist() for col in table.columns))]  # column names may repeat
    return columns, rows


def _hint(message: str, views: Sequence[str]) -> str:
    if "does not exist" in message and "Table with name" in message:
        have = ", ".join(sorted(views)) or "none yet (`make deploy-resources` creates positions)"
        return f"{message}\nthe lake's tables: {have}"
    return message


def main(argv: list[str] | None = None) -> int:
    import duckdb

    from lakehouse.catalog import load_catalog
    from lakehouse.duck import LakeQueryError, connect
    from lakehouse.settings import LakeSettings
    from pipeline_common.settings import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", help='the SQL ("-": read it from stdin)')
    parser.add_argument("--json", action="store_true", help="print one JSON array of objects instead of a table")
    parser.add_argument("--max-rows", type=int, default=100, help="rows a table shows (default 100; --json prints all)")
    LakeSettings.add_flags(parser.add_argument_group("settings"))
    args = parser.parse_args(argv)
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    if not sql.strip():
        print("lake-sql: no SQL given (make lake-sql SQL=\"SELECT count(*) FROM positions\")", file=sys.stderr)
        return EXIT_BAD_QUERY
    try:
        settings = LakeSettings.from_args(args)
        catalog = load_catalog(settings)
        con = connect(settings, catalog=catalog)
    except (ConfigError, LakeQueryError) as exc:
        print(f"lake-sql: {exc}", file=sys.stderr)
        return EXIT_NO_LAKE
    except Exception as exc:  # the catalog's database or the S3 endpoint: say which, not a traceback
        reason = (str(exc).strip().splitlines() or [""])[0]
        print(f"lake-sql: cannot open the lake (catalog {settings.catalog_name!r}, warehouse {settings.warehouse}): "
              f"{type(exc).__name__}: {reason}", file=sys.stderr)
        return EXIT_NO_LAKE
    try:
        columns, rows = run_query(con, sql)
    except duckdb.Error as exc:
        views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
        print(f"lake-sql: {_hint(str(exc), views)}", file=sys.stderr)
        return EXIT_BAD_QUERY
    if args.json:
        print(format_json(columns, rows))
    elif columns:
        print(format_table(columns, rows[:max(args.max_rows, 0)], total=len(rows)))
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
