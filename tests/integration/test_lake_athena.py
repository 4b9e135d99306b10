"""Athena on the real endpoint: PyIceberg commits rows into a fresh table (SQL catalog in the stack's PostgreSQL,
data on the endpoint's S3), the table is published to S3 Tables (src/lakehouse/athena.py), and
StartQueryExecution / GetQueryResults answer what DuckDB answers on the same table. Every column is aliased
(MiniStack names `count(*)` as DuckDB does, AWS as `_col0`) and timestamps come back as text."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from infra.lake import athena as athena_cli
from lakehouse import athena, duck
from lakehouse.catalog import OFFSETS_PROPERTY, POSITIONS_ARROW, encode_offsets, ensure_rejects_table
from lake_support import fresh_lake

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 23, 58, tzinfo=timezone.utc)  # the rows cross UTC midnight: two day partitions
COUNTRIES = ("Switzerland", "Germany", "Ireland")


def positions(n: int, start_offset: int) -> pa.Table:
    """n positions of 30 aircraft from three countries, 5 s apart, sorted as the archiver sorts a batch."""
    rows = []
    for i in range(start_offset, start_offset + n):
        t = T0 + timedelta(seconds=5 * (i // 30))
        rows.append({"icao24": f"4b{i % 30:04x}", "time_position": t, "last_contact": t + timedelta(seconds=1),
                     "callsign": None if i % 7 == 0 else f"SWR{i % 30}", "origin_country": COUNTRIES[i % 30 % 3],
                     "longitude": 8.55 + i * 1e-4, "latitude": 47.45, "baro_altitude": 3000.0,
                     "geo_altitude": 3100.0, "on_ground": i % 5 == 0, "velocity": 180.0, "true_track": 270.0,
                     "vertical_rate": -5.0, "squawk": "7000", "category": 4, "position_source": 0,
                     "source": "synthetic", "kafka_partition": 0, "kafka_offset": i, "ingested_at": T0})
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW).sort_by([("icao24", "ascending"),
                                                                        ("time_position", "ascending")])


def append(table, n: int, offset: int) -> None:
    table.append(positions(n, offset),
                 snapshot_properties={OFFSETS_PROPERTY: encode_offsets("aviation-data", {0: offset + n})})


def athena_query(settings, sql: str) -> athena.QueryResult:
    """query() publishes first (LAKE_ATHENA_PUBLISH is on for the local endpoint); a MiniStack started before
    it got its DuckDB HOME cannot load the iceberg extension: say so instead of a bare download error."""
    try:
        return athena.query(settings, sql)
    except athena.AthenaQueryError as exc:
        if "Failed to download extension" in exc.reason:
            pytest.fail("MiniStack was started without its DuckDB HOME (infra/stack/servers.py start_ministack): "
                        f"restart the stack; Athena said: {exc.reason[:300]}")
        raise


@pytest.fixture(scope="module")
def lake(stack, database_url):
    """A fresh namespace with a positions table that got two commits; its S3 Tables copies and the tables
    themselves are removed at the end."""
    with fresh_lake(database_url) as (settings, catalog, table):
        ensure_rejects_table(catalog, settings)
        assert settings.athena_publishing, "the stack's endpoint is local: publishing must default to on"
        # The queries' result files go to a folder of this test's own, removed at the end.
        results = f"s3://{settings.warehouse_bucket}/athena-results/{settings.namespace}/"
        os.environ["LAKE_ATHENA_OUTPUT"] = results  # for the `make lake-athena` subprocess too
        settings = dataclasses.replace(settings, athena_output=results)
        try:
            append(table, 700, 0)
            append(table, 1300, 700)
            yield settings, table
        finally:
            del os.environ["LAKE_ATHENA_OUTPUT"]
            athena.unpublish(settings, [name for _, name in catalog.list_tables(settings.namespace)])
            s3 = athena.clients(settings).s3
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.warehouse_bucket,
                                                                     Prefix=f"athena-results/{settings.namespace}/"):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=settings.warehouse_bucket, Delete={"Objects": keys, "Quiet": True})


def duck_rows(settings, sql: str) -> list[tuple]:
    con = duck.connect(settings)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_athena_counts_what_duckdb_counts(lake):
    settings, _ = lake
    sql = "SELECT count(*) AS n, count(DISTINCT icao24) AS aircraft, count(callsign) AS callsigns FROM positions"
    result = athena_query(settings, sql)
    assert result.columns == ["n", "aircraft", "callsigns"]
    assert [tuple(r) for r in result.rows] == duck_rows(settings, sql)
    assert result.rows[0][0] == 2000


def test_athena_group_by_matches_duckdb(lake):
    settings, _ = lake
    sql = ("SELECT CAST(time_position AS DATE) AS day, origin_country AS country, count(*) AS n, "
           "count(DISTINCT icao24) AS aircraft, sum(CASE WHEN on_ground THEN 1 ELSE 0 END) AS grounded, "
           "min(time_position) AS first_seen FROM positions GROUP BY 1, 2 ORDER BY 1, 2")
    result = athena_query(settings, sql)
    assert result.columns == ["day", "country", "n", "aircraft", "grounded", "first_seen"]
    # Dates and timestamps are text (MiniStack prints them as Python does: '2026-12-06 23:58:00+00:00').
    got = [(datetime.fromisoformat(day).date(), country, n, aircraft, grounded, datetime.fromisoformat(first))
           for day, country, n, aircraft, grounded, first in result.rows]
    assert got == duck_rows(settings, sql)
    assert len(got) == 6 and {row[0].isoformat() for row in got} == {"2026-12-06", "2026-12-07"}


def test_a_new_commit_is_answered_once_published(lake):
    settings, table = lake
    before = athena.run_query(settings, "SELECT count(*) AS n FROM positions").rows[0][0]
    append(table, 300, 2000)
    # Until it is published, Athena answers from the copy it has: the snapshot published last.
    assert athena.run_query(settings, "SELECT count(*) AS n FROM positions").rows == [[before]]
    athena.publish_quietly(settings, table)  # what the archiver runs after each commit
    assert athena.run_query(settings, "SELECT count(*) AS n FROM positions").rows == [[before + 300]]
    assert duck_rows(settings, "SELECT count(*) FROM positions") == [(before + 300,)]


def test_a_forgotten_table_is_published_again(lake):
    """MiniStack keeps S3 Tables in memory: after a restart the table is gone until the next publish."""
    settings, _ = lake
    c = athena.clients(settings)
    c.s3tables.delete_table(tableBucketARN=c.bucket_arn(settings.athena_table_bucket),
                            namespace=settings.namespace, name=settings.table)
    with pytest.raises(athena.AthenaQueryError) as refused:
        athena.run_query(settings, "SELECT count(*) AS n FROM positions")
    assert athena.missing_table(refused.value.reason), refused.value.reason
    expected = duck_rows(settings, "SELECT count(*) FROM positions")[0][0]
    assert athena_query(settings, "SELECT count(*) AS n FROM positions").rows == [[expected]]


def test_make_lake_athena_prints_the_answer_and_refuses_bad_sql_with_exit_2(lake, capsys):
    settings, _ = lake
    env = dict(os.environ, LAKE_NAMESPACE=settings.namespace)
    expected = duck_rows(settings, "SELECT count(*) FROM positions")[0][0]
    ok = subprocess.run([sys.executable, "-m", "infra.lake.athena", "--json", "SELECT count(*) AS n FROM positions"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == [{"n": expected}]
    # The same command in this process (a second interpreter start costs tens of seconds on a loaded machine).
    assert athena_cli.main(["SELECT nope FROM positions"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lake-athena: Athena FAILED: ") and '"nope"' in err
