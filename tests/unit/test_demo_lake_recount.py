"""The demo's lake reconciliation (infra/demo/lake_recount.py), its pure parts: the run's rows in the table
against the run's distinct positions in Kafka, and the positions_clean rules written again in Arrow, which
must keep exactly the rows the gold job's SQL (src/lakehouse/gold.sql, run here by in-process DuckDB) keeps."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import duckdb
import pyarrow as pa
from pyiceberg.expressions import AlwaysFalse, And, Or

from infra.demo.lake_recount import (caught_up, clean_positions, compare_keys, equal_detail, offsets_filter,
                                     utc_days)
from lakehouse import gold
from lakehouse.catalog import POSITIONS_ARROW

DAY = date(2026, 12, 6)
T0 = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
_offsets = iter(range(100_000))


def row(icao24: str, seconds: int, *, ingested_s: int = 60, partition: int = 0, **values) -> dict:
    when = T0 + timedelta(seconds=seconds)
    doc = {name: None for name in POSITIONS_ARROW.names}
    doc.update(icao24=icao24, time_position=when, last_contact=when, callsign="DLH4AB", origin_country="Germany",
               latitude=50.0, longitude=8.0, baro_altitude=10000.0, on_ground=False, velocity=200.0,
               true_track=90.0, vertical_rate=0.0, category=4, source="synthetic", kafka_partition=partition,
               kafka_offset=next(_offsets), ingested_at=when + timedelta(seconds=ingested_s))
    doc.update(values)
    return doc


def edge_rows() -> list[dict]:
    """Every bound of the rules on both sides, NULLs, NaN, and keys archived twice."""
    return [
        row("a00001", 0),                                        # clean
        row("a00001", 5, latitude=None),                         # no position: out
        row("a00001", 10, latitude=0.0, longitude=0.0),          # null island: out
        row("a00001", 15, latitude=0.0, longitude=8.0),          # on the equator: in
        row("a00001", 20, latitude=90.0, longitude=-180.0),      # both bounds: in
        row("a00001", 25, latitude=90.0001),                     # out
        row("a00001", 30, baro_altitude=-460.0),                 # in
        row("a00001", 35, baro_altitude=18300.5),                # out
        row("a00001", 40, baro_altitude=None, velocity=None, true_track=None, vertical_rate=None),  # in
        row("a00001", 45, velocity=700.0),                       # in
        row("a00001", 50, velocity=700.1),                       # out
        row("a00001", 55, velocity=math.nan),                    # NaN: out
        row("a00001", 60, true_track=360.0),                     # in
        row("a00001", 65, true_track=-0.5),                      # out
        row("a00001", 70, vertical_rate=-160.0),                 # in
        row("a00001", 75, vertical_rate=160.5),                  # out
        row("A00001", 80),                                       # upper case: not an icao24
        row("a0001", 85),                                        # five characters
        # archived twice: the first copy (by ingested_at) decides, and it is dirty, so the key is out
        row("b00002", 0, ingested_s=10, velocity=900.0),
        row("b00002", 0, ingested_s=20),
        # archived twice in one commit: partition, then offset, break the tie; the first is clean: in once
        row("b00002", 5, partition=0),
        row("b00002", 5, partition=1, baro_altitude=90000.0),
        row("b00002", 5, partition=2),
    ]


def test_the_clean_rules_keep_exactly_what_the_gold_jobs_sql_keeps():
    # GIVEN positions on and around every bound of positions_clean
    rows = pa.Table.from_pylist(edge_rows(), schema=POSITIONS_ARROW)
    con = duckdb.connect()
    con.register("edge_positions", rows)
    # WHEN the gold job's SQL computes the day, and the Arrow rules recount the same rows
    result = gold.compute_day(con, DAY, source="edge_positions")
    kept = clean_positions(rows.select(["icao24", "time_position", "ingested_at", "kafka_partition", "kafka_offset",
                                        "latitude", "longitude", "baro_altitude", "velocity", "true_track",
                                        "vertical_rate"]))
    # THEN both keep the same keys, and gold_daily_country's positions total is that count
    sql_keys = set(con.execute("SELECT icao24, time_position FROM day_clean").fetchall())
    arrow_keys = set(zip(kept.column("icao24").to_pylist(), kept.column("time_position").to_pylist()))
    assert arrow_keys == sql_keys
    assert kept.num_rows == len(arrow_keys) == 9   # 8 of a00001 and one of b00002
    assert sum(result.gold["gold_daily_country"].column("positions").to_pylist()) == kept.num_rows


def test_no_rows_are_no_clean_rows():
    empty = POSITIONS_ARROW.empty_table()
    assert clean_positions(empty).num_rows == 0
    assert utc_days(empty.column("time_position")) == []


def test_the_runs_rows_reconcile_only_key_for_key():
    t = datetime(2026, 12, 6, 23, 59, 59, tzinfo=timezone.utc)
    kafka = {("a00001", t), ("a00002", t), ("a00003", t)}
    # GIVEN the lake holds each key once: reconciled
    same = compare_keys(sorted(kafka), kafka)
    assert same.ok and same.detail() == "3 rows == 3 distinct in Kafka"
    # GIVEN one key missing and another not of the run: the counts agree, the keys do not
    swapped = compare_keys([("a00001", t), ("a00002", t), ("ffffff", t)], kafka)
    assert (swapped.rows, swapped.distinct) == (3, 3) and not swapped.ok
    assert swapped.detail() == "MISMATCH: 3 rows vs 3 distinct in Kafka; 1 missing, 1 not in the run, 0 doubled"
    # GIVEN a key archived twice
    doubled = compare_keys([*kafka, ("a00001", t)], kafka)
    assert not doubled.ok and doubled.doubled == 1 and doubled.detail().startswith("MISMATCH: 4 rows vs 3")


def test_equal_detail_says_mismatch():
    assert equal_detail(1_200, 1_200) == "1,200 == 1,200"
    assert equal_detail(1_200, 1_199) == "MISMATCH: 1,200 vs 1,199"


def test_the_runs_days_are_utc_days_across_midnight():
    local = timezone(timedelta(hours=-5))
    times = pa.chunked_array([pa.array([datetime(2026, 12, 6, 23, 59, 59, tzinfo=timezone.utc),
                                        datetime(2026, 12, 6, 19, 0, 1, tzinfo=local)],   # 00:00:01 UTC
                                       pa.timestamp("us", tz="UTC"))])
    assert utc_days(times) == [date(2026, 12, 6), date(2026, 12, 7)]


def test_offsets_filter_covers_only_the_runs_non_empty_ranges():
    assert offsets_filter({}) == AlwaysFalse()
    assert offsets_filter({0: (5, 5)}) == AlwaysFalse()          # a partition the run wrote nothing to
    assert isinstance(offsets_filter({0: (5, 6), 1: (7, 7)}), And)
    assert isinstance(offsets_filter({0: (5, 6), 1: (7, 9)}), Or)


def test_the_table_has_caught_up_when_every_partition_reached_the_runs_end():
    ranges = {0: (10, 20), 1: (5, 5), 2: (0, 3)}
    assert caught_up({0: 20, 2: 3}, ranges)                       # partition 1 had nothing in the run
    assert not caught_up({0: 19, 2: 3}, ranges)
    assert not caught_up({0: 20}, ranges)
