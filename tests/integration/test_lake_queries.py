"""The lake queried two ways against the real stack: PyIceberg commits rows into a fresh table (SQL catalog in
the stack's PostgreSQL, data on the endpoint's S3), then DuckDB (`make lake-sql`) and Spark (Iceberg's JDBC
catalog on the same PostgreSQL rows) each count them and see the offsets the commits carried."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import duck
from lakehouse.catalog import (OFFSETS_PROPERTY, POSITIONS_ARROW, encode_offsets,
                               ensure_rejects_table)
from lake_support import fresh_lake

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 23, 58, tzinfo=timezone.utc)  # the rows cross UTC midnight: two day partitions
BATCHES = (700, 1300)


def positions(n: int, start_offset: int) -> pa.Table:
    """n positions of 50 aircraft, 5 s apart, sorted as the archiver sorts a batch."""
    rows = []
    for i in range(start_offset, start_offset + n):
        t = T0 + timedelta(seconds=5 * (i // 50))
        rows.append({"icao24": f"4b{i % 50:04x}", "time_position": t, "last_contact": t + timedelta(seconds=1),
                     "callsign": f"SWR{i % 50}", "origin_country": "Switzerland", "longitude": 8.55 + i * 1e-4,
                     "latitude": 47.45, "baro_altitude": 3000.0, "geo_altitude": 3100.0, "on_ground": False,
                     "velocity": 180.0, "true_track": 270.0, "vertical_rate": -5.0, "squawk": "7000",
                     "category": 4, "position_source": 0, "source": "synthetic", "kafka_partition": i % 2,
                     "kafka_offset": i // 2, "ingested_at": T0})
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW).sort_by([("icao24", "ascending"),
                                                                        ("time_position", "ascending")])


@pytest.fixture(scope="module")
def lake(stack, database_url):
    """A fresh namespace with a positions table that got two commits, each carrying its offsets as the
    archiver's do; dropped (files too) at the end."""
    with fresh_lake(database_url) as (settings, catalog, table):
        ensure_rejects_table(catalog, settings)
        offset = 0
        for n in BATCHES:
            table.append(positions(n, offset), snapshot_properties={
                OFFSETS_PROPERTY: encode_offsets("aviation-data", {0: (offset + n) // 2, 1: (offset + n) // 2})})
            offset += n
        yield settings


def test_duckdb_counts_every_committed_row(lake):
    con = duck.connect(lake)
    count, offsets, days = con.execute(
        "SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)), count(DISTINCT CAST(time_position AS DATE))"
        " FROM positions").fetchone()
    assert (count, offsets, days) == (sum(BATCHES), sum(BATCHES), 2)
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)


def test_make_lake_sql_prints_the_count(lake):
    env = dict(os.environ, LAKE_NAMESPACE=lake.namespace)
    proc = subprocess.run([sys.executable, "-m", "infra.lake.sql", "--json", "SELECT count(*) AS n FROM positions"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": sum(BATCHES)}]


def test_make_lake_sql_refuses_a_bad_query_with_exit_2(lake):
    env = dict(os.environ, LAKE_NAMESPACE=lake.namespace)
    proc = subprocess.run([sys.executable, "-m", "infra.lake.sql", "SELECT nope FROM positions"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lake-sql: Binder Error") and "nope" in proc.stderr


@pytest.mark.slow
def test_spark_reads_the_same_table_and_its_offsets(lake):
    from infra.lake.spark import spark_session

    spark = spark_session(lake)
    try:
        # `positions` resolves: the lake's catalog and namespace are the session's current ones
        assert spark.sql("SELECT count(*) AS n FROM positions").collect()[0]["n"] == sum(BATCHES)
        assert spark.sql("SELECT count(*) AS n FROM positions WHERE time_position >= TIMESTAMP "
                         "'2026-12-07 00:00:00'").collect()[0]["n"] == duck.connect(lake).execute(
            "SELECT count(*) FROM positions WHERE time_position >= TIMESTAMPTZ '2026-12-07 00:00:00+00'").fetchone()[0]
        # AND the offsets each commit carried are in the snapshots' summaries, as the archiver resumes from them
        snapshots = f"{lake.catalog_name}.{lake.namespace}.positions.snapshots"
        summaries = [r[0] for r in spark.sql(f"SELECT summary['{OFFSETS_PROPERTY}'] FROM {snapshots} "
                                             "ORDER BY committed_at").collect()]
        assert summaries == [encode_offsets("aviation-data", {0: 350, 1: 350}),
                             encode_offsets("aviation-data", {0: 1000, 1: 1000})]
    finally:
        spark.stop()
