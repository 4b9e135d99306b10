"""The Spark half of the bench's lakequery section, in a process of its own so its JVM's CPU is measured
apart from the harness and the JVM is gone when the section ends:

    python -m infra.bench.lake_spark --out answer.json      (LAKE_NAMESPACE etc. name the table)

Times the session start (JVM, jars, catalog settings: infra.lake.spark.spark_session) and the day-scale
query separately, each with the CPU seconds of this process and every process under it (the JVM), and
writes the answer's rows as JSON for the harness to compare with DuckDB's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The question both engines answer, in SQL both run unchanged: distinct aircraft per origin country per UTC
# hour (both sessions are in UTC: spark.sql.session.timeZone, lakehouse.duck's SET TimeZone).
DAY_QUERY = ("SELECT origin_country, CAST(time_position AS DATE) AS day, hour(time_position) AS hour, "
             "count(DISTINCT icao24) AS aircraft FROM positions "
             "GROUP BY origin_country, CAST(time_position AS DATE), hour(time_position)")


def tree_cpu_s(pid: int | None = None) -> float:
    """CPU seconds (utime + stime) of a process and its living descendants (the JVM pyspark starts)."""
    from infra.bench.procstat import cpu_seconds
    from infra.stack.processes import with_children
    return sum(cpu_seconds(p) or 0.0 for p in with_children(pid or os.getpid()))


def answer_rows(rows) -> list[list]:
    """(country, day, hour, aircraft) rows as JSON-able lists, the same shape lake.duckdb_answer gives."""
    return [[r[0], r[1].isoformat(), int(r[2]), int(r[3])] for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to write the timings and the answer (JSON)")
    args = parser.parse_args(argv)
    from infra.lake.spark import spark_session

    t0, c0 = time.monotonic(), tree_cpu_s()
    spark = spark_session()
    t1, c1 = time.monotonic(), tree_cpu_s()
    try:
        rows = spark.sql(DAY_QUERY).collect()
        t2, c2 = time.monotonic(), tree_cpu_s()
    finally:
        spark.stop()
    # monotonic times are the machine's (CLOCK_MONOTONIC): the harness cuts its CPU meter at the same moments
    args.out.write_text(json.dumps({
        "session": {"t0": t0, "t1": t1, "wall_s": round(t1 - t0, 2), "cpu_s": round(c1 - c0, 2)},
        "query": {"t0": t1, "t1": t2, "wall_s": round(t2 - t1, 2), "cpu_s": round(c2 - c1, 2)},
        "rows": answer_rows(rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
