"""The cleaning rules live twice: PostgreSQL's positions_clean view (src/tracker/migrations/0010_analytics.sql)
and the lake's silver table (src/lakehouse/gold.sql, DuckDB SQL). They are two engines, so no code is shared;
this test keeps them from drifting. The same rows, chosen on and around every bound, go into the real
PostgreSQL through the tracker's own writer and into DuckDB as the lake's positions; the two cleaned sets
must be the same rows with the same values."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pytest

from lakehouse import gold
from lakehouse.catalog import POSITIONS_ARROW
from tracker import store
from tracker.records import Position
from tracker_support import isolated_schema

DAY = date(2026, 12, 5)
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)

# On each side of every bound of positions_clean, and NULL where the rule allows it.
EDGES = {
    "icao24": ["3c6444", "3C6444", "3c644", "3c64445", "3c644g", " 3c6444"],
    "latitude": [-90.5, -90.0, 0.0, 48.1, 90.0, 90.5, None],
    "longitude": [-180.5, -180.0, 0.0, 11.5, 180.0, 180.5, None],
    "baro_altitude": [-460.5, -460.0, 0.0, 18300.0, 18300.5, 90000.0, None],
    "velocity": [-0.5, 0.0, 700.0, 700.5, None],
    "true_track": [-0.5, 0.0, 360.0, 360.5, None],
    "vertical_rate": [-160.5, -160.0, 160.0, 160.5, None],
    "callsign": ["DLH4AB", " dlh4ab ", "", "   ", "\tDLH4AB", "DLH4AB\n", None],
    "origin_country": ["Germany", " Germany ", "", "  ", "\tFrance", None],
}
BASE = {"icao24": "3c6444", "latitude": 48.1, "longitude": 11.5, "baro_altitude": 10000.0, "velocity": 230.0,
        "true_track": 90.0, "vertical_rate": 0.0, "callsign": "DLH4AB", "origin_country": "Germany"}


def edge_rows() -> list[Position]:
    """One row per edge value (the others at a clean base), plus the (latitude, longitude) grid where null
    island lives; each row its own aircraft-second so none is a duplicate of another."""
    variants = [{name: value} for name, values in EDGES.items() for value in values]
    variants += [{"latitude": lat, "longitude": lon}
                 for lat, lon in itertools.product((0.0, 0.5, None), (0.0, 0.5, None))]
    rows = []
    for n, change in enumerate(variants):
        values = BASE | change
        when = T0 + timedelta(seconds=n)
        rows.append(Position(
            icao24=values["icao24"], time_position=when, last_contact=when, callsign=values["callsign"],
            origin_country=values["origin_country"], longitude=values["longitude"], latitude=values["latitude"],
            baro_altitude=values["baro_altitude"], geo_altitude=None, on_ground=False, velocity=values["velocity"],
            true_track=values["true_track"], vertical_rate=values["vertical_rate"], squawk=None, category=3,
            position_source=0, source="synthetic", kafka_partition=0, kafka_offset=n))
    return rows


COMPARED = ("icao24", "time_position", "callsign", "origin_country", "longitude", "latitude", "baro_altitude",
            "velocity", "true_track", "vertical_rate")


def normal(row) -> tuple:
    # PostgreSQL keeps the altitude as real: every float is compared at float32 precision; times as naive UTC
    # (DuckDB hands out a timestamptz only through pytz, which the project does not need).
    return tuple(round(v, 3) if isinstance(v, float)
                 else v.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo
                 else v for v in row)


def postgres_clean(url: str, rows: list[Position]) -> set[tuple]:
    with store.connect(url, "test-clean-rules") as conn:
        store.migrate(conn)
        store.PositionWriter(conn).write(rows)
        cur = conn.execute(f"SELECT {', '.join(COMPARED)} FROM positions_clean "
                           "WHERE time_position >= %s AND time_position < %s",
                           (store.day_start(DAY), store.day_start(DAY + timedelta(days=1))))
        return {normal(r) for r in cur.fetchall()}


def lake_clean(rows: list[Position]) -> set[tuple]:
    table = pa.Table.from_pylist([r._asdict() | {"ingested_at": T0} for r in rows], schema=POSITIONS_ARROW)
    con = duckdb.connect()
    con.register("lake_positions", table)
    gold.compute_day(con, DAY, source="lake_positions")
    columns = ", ".join("time_position::TIMESTAMP" if c == "time_position" else c for c in COMPARED)
    cur = con.execute(f"SELECT {columns} FROM {gold.DAY_CLEAN}")
    return {normal(r) for r in cur.fetchall()}


def test_positions_clean_and_the_lakes_silver_keep_the_same_rows(database_url):
    rows = edge_rows()
    with isolated_schema(database_url) as url:
        in_postgres = postgres_clean(url, rows)
    in_lake = lake_clean(rows)

    only_postgres = sorted(in_postgres - in_lake, key=repr)
    only_lake = sorted(in_lake - in_postgres, key=repr)
    assert not only_postgres and not only_lake, (
        f"the engines disagree; kept only by PostgreSQL: {only_postgres}; kept only by the lake: {only_lake}")
    # The rules did bite: rows past a bound are gone, and the base row survives with its names cleaned.
    assert 0 < len(in_lake) < len(rows)
    assert not any(r[6] is not None and r[6] > 18300 for r in in_lake)
    assert any(r[0] == "3c6444" and r[2] == "DLH4AB" and r[3] == "Germany" for r in in_lake)


@pytest.mark.parametrize("name", ["callsign", "origin_country"])
def test_both_engines_trim_and_default_names_alike(database_url, name):
    # The same comparison, one column at a time, so a failure names the rule that drifted.
    rows = [r for r in edge_rows() if getattr(r, name) != BASE[name]]
    with isolated_schema(database_url) as url:
        in_postgres = {r[COMPARED.index(name)] for r in postgres_clean(url, rows)}
    assert in_postgres == {r[COMPARED.index(name)] for r in lake_clean(rows)}
