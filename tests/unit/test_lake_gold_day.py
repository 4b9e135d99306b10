"""Silver and gold of one UTC day (src/lakehouse/gold.sql) on a small hand-made day whose answers are known:
a duplicate row, an impossible altitude, a 30-minute gap, a ground roll, a bad icao24, "null island", a
row of the day before; then the write-back to a local Iceberg catalog (SQLite + a folder), run twice."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse import gold
from lakehouse.catalog import POSITIONS_ARROW, TABLE_PROPERTIES

DAY = date(2026, 12, 6)
T0 = datetime(2026, 12, 6, tzinfo=timezone.utc)


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return T0 + timedelta(hours=hh, minutes=mm, seconds=ss)


_offset = iter(range(10_000))


def row(icao24: str, when: datetime, *, callsign="DLH4AB", country="Germany", on_ground=False, baro=10000.0,
        lat=50.0, lon=8.0, category=4, ingested=None, **extra) -> dict:
    doc = {name: None for name in POSITIONS_ARROW.names}
    doc.update(icao24=icao24, time_position=when, last_contact=when, callsign=callsign, origin_country=country,
               latitude=lat, longitude=lon, baro_altitude=baro, geo_altitude=baro, on_ground=on_ground,
               velocity=200.0, true_track=90.0, vertical_rate=0.0, category=category, source="synthetic",
               kafka_partition=0, kafka_offset=next(_offset), ingested_at=ingested or when + timedelta(seconds=2))
    doc.update(extra)
    return doc


def positions_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW)


def hand_made_day() -> list[dict]:
    """Expected: Germany 2 aircraft, 7 positions, 55 s airborne; United States 1, 3, 5 s; Unknown 1, 1, 0 s."""
    return [
        # a1: 10 s + 10 s, then a 29 min 40 s gap (not counted), then 5 s: 25 s airborne, 5 clean positions.
        row("a1a1a1", at(10, 0, 0), callsign=" dlh4ab "),
        row("a1a1a1", at(10, 0, 10)),
        # the same position archived again later with other values: the first copy is the one kept
        row("a1a1a1", at(10, 0, 10), callsign="XXX999", ingested=at(10, 5)),
        row("a1a1a1", at(10, 0, 15), baro=90000.0),           # impossible altitude: dropped, not an interval end
        row("a1a1a1", at(10, 0, 20)),
        row("a1a1a1", at(10, 30, 0)),
        row("a1a1a1", at(10, 30, 5)),
        # e2: same country and airline, another category: 30 s airborne, 2 positions.
        row("e2e2e2", at(10, 5, 0), callsign="DLH9", category=6),
        row("e2e2e2", at(10, 5, 30), callsign="DLH9", category=6),
        # b3: a registration (no airline); on the ground, then airborne: only the 5 s in the air count.
        row("b3b3b3", at(11, 0, 0), callsign="N123AB", country="United States", category=2, on_ground=True, baro=None),
        row("b3b3b3", at(11, 0, 5), callsign="N123AB", country="United States", category=2),
        row("b3b3b3", at(11, 0, 10), callsign="N123AB", country="United States", category=2),
        # c4: no country, no category, one position just before midnight.
        row("c4c4c4", at(23, 59, 55), callsign="BAW12", country=" ", category=None),
        row("c4c4c4", at(12, 0, 0), callsign="BAW12", country=" ", category=None, lat=0.0, lon=0.0),  # null island
        row("c4c4c4", at(0) - timedelta(seconds=1), callsign="BAW12", country=" ", category=None),  # the day before
        row("ABC999", at(10, 0, 0)),                          # not a lower-case hex icao24: dropped
    ]


@pytest.fixture
def computed():
    con = duckdb.connect()
    con.register("positions", positions_table(hand_made_day()))
    return con, gold.compute_day(con, DAY)


def rows_of(table: pa.Table, *columns: str) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in table.to_pylist()]


def test_silver_keeps_the_first_copy_and_drops_what_positions_clean_drops(computed):
    con, result = computed
    silver = pa.concat_tables(result.silver_batches(con, batch_rows=4))
    assert result.silver_rows == silver.num_rows == 5 + 2 + 3 + 1
    assert silver.schema == gold.SCHEMAS[gold.SILVER]
    kept = {(r["icao24"], r["time_position"]): r for r in silver.to_pylist()}
    assert kept[("a1a1a1", at(10, 0, 10))]["callsign"] == "DLH4AB"          # first copy, not "XXX999"
    assert kept[("a1a1a1", at(10, 0, 0))]["callsign"] == "DLH4AB"           # trimmed, upper case
    assert ("a1a1a1", at(10, 0, 15)) not in kept                            # 90,000 m
    assert kept[("c4c4c4", at(23, 59, 55))]["origin_country"] == "Unknown"
    assert not [k for k in kept if k[0] == "ABC999" or k[1].date() != DAY or k[1] == at(12)]
    keys = [(r["icao24"], r["time_position"]) for r in silver.to_pylist()]
    assert keys == sorted(keys)                                             # sorted like positions


def test_country_totals_and_flight_hours(computed):
    _, result = computed
    got = rows_of(result.gold["gold_daily_country"], "day", "country", "aircraft", "positions", "flight_hours")
    assert got == [(DAY, "Germany", 2, 7, pytest.approx(55 / 3600)),
                   (DAY, "United States", 1, 3, pytest.approx(5 / 3600)),
                   (DAY, "Unknown", 1, 1, 0.0)]


def test_airline_is_the_icao_prefix_and_registrations_have_none(computed):
    _, result = computed
    got = rows_of(result.gold["gold_daily_airline"], "airline", "aircraft", "positions", "flight_hours")
    assert got == [("BAW", 1, 1, 0.0), ("DLH", 2, 7, pytest.approx(55 / 3600))]


def test_category_rows_name_each_category_and_keep_the_unknown(computed):
    _, result = computed
    got = rows_of(result.gold["gold_daily_category"], "category", "category_name", "aircraft", "positions")
    assert got == [(2, "Light", 1, 3), (4, "Large", 1, 5), (6, "Heavy", 1, 2), (None, "Unknown", 1, 1)]


def test_busiest_hours_rank_by_aircraft_then_positions(computed):
    _, result = computed
    got = rows_of(result.gold["gold_hourly"], "hour", "aircraft", "positions", "busiest_rank")
    assert got == [(at(10), 2, 7, 1), (at(11), 1, 3, 2), (at(23), 1, 1, 3)]
    assert sum(r["flight_hours"] for r in result.gold["gold_hourly"].to_pylist()) == pytest.approx(60 / 3600)


def test_top_categories_per_country(computed):
    _, result = computed
    got = rows_of(result.gold["gold_top_categories_per_country"], "country", "category_rank", "category_name",
                  "aircraft")
    # Unknown's only aircraft has no category: nothing to rank there.
    assert got == [("Germany", 1, "Large", 1), ("Germany", 2, "Heavy", 1), ("United States", 1, "Light", 1)]


def test_top_three_only_and_ties_broken_by_positions():
    rows = []
    for n, category in enumerate((2, 3, 4, 5)):
        for k in range(n + 1):                               # category 5: 4 aircraft ... category 2: 1
            rows.append(row(f"{n:02x}{k:04x}", at(9), category=category))
    rows.append(row("ffff00", at(9, 1), category=2))         # category 2 and 3 both 2 aircraft now...
    rows.append(row("ffff00", at(9, 2), category=2))         # ...and 2 has more positions
    con = duckdb.connect()
    con.register("positions", positions_table(rows))
    got = rows_of(gold.compute_day(con, DAY).gold["gold_top_categories_per_country"], "category_rank", "category")
    assert got == [(1, 5), (2, 4), (3, 2)]


def test_a_gap_of_exactly_ten_minutes_counts_and_one_second_more_does_not():
    rows = [row("a1a1a1", at(8, 0, 0)), row("a1a1a1", at(8, 10, 0)), row("a1a1a1", at(8, 20, 1))]
    con = duckdb.connect()
    con.register("positions", positions_table(rows))
    got = gold.compute_day(con, DAY).gold["gold_daily_country"].to_pylist()
    assert got[0]["flight_hours"] == pytest.approx(600 / 3600)


def test_an_empty_day_gives_empty_tables():
    con = duckdb.connect()
    con.register("positions", positions_table([row("a1a1a1", at(8) + timedelta(days=1))]))
    result = gold.compute_day(con, DAY)
    assert result.silver_rows == 0
    assert {name: t.num_rows for name, t in result.gold.items()} == {name: 0 for name in gold.GOLD_TABLES}


def test_the_sql_file_has_the_silver_table_and_every_gold_table():
    names = [s.name for s in gold.load_statements() if s.kind == "table"]
    assert names == [gold.SILVER, *gold.GOLD_TABLES]


def test_parse_day_says_what_it_expects():
    assert gold.parse_day("2026-12-06") == DAY
    with pytest.raises(ValueError, match="not a date like 2026-12-06"):
        gold.parse_day("06/12/2026")


# ------------------------------------------------------------------ writing back, twice

@pytest.fixture
def local_catalog(tmp_path):
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/warehouse")


def read_back(catalog, name: str) -> list[dict]:
    table = catalog.load_table(("lake", name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: [str(v) for v in r.values()])


def test_a_rerun_of_a_day_gives_the_same_tables_and_leaves_other_days_alone(local_catalog):
    other_day = [row("d5d5d5", at(9) + timedelta(days=1), country="France")]
    con = duckdb.connect()
    con.register("positions", positions_table(hand_made_day() + other_day))
    gold.write_day(local_catalog, "lake", con, gold.compute_day(con, DAY + timedelta(days=1)))
    first = gold.write_day(local_catalog, "lake", con, gold.compute_day(con, DAY), batch_rows=4)
    snapshot = {name: read_back(local_catalog, name) for name in gold.SCHEMAS}

    second = gold.write_day(local_catalog, "lake", con, gold.compute_day(con, DAY), batch_rows=4)

    assert {name: read_back(local_catalog, name) for name in gold.SCHEMAS} == snapshot
    assert [w.rows for w in first] == [w.rows for w in second]
    assert {w.table: w.rows for w in first}[gold.SILVER] == 11
    countries = {r["country"]: r for r in read_back(local_catalog, "gold_daily_country")}
    assert countries["France"]["day"] == DAY + timedelta(days=1)            # the other day untouched
    assert countries["Germany"]["positions"] == 7
    silver = local_catalog.load_table(("lake", gold.SILVER))
    assert silver.scan().to_arrow().num_rows == 11 + 1
    assert len({task.file.file_path for task in silver.scan().plan_files()}) == 3 + 1  # 4 + 4 + 3 rows, 1 row
    assert str(silver.spec().fields[0].transform) == "day"
    assert local_catalog.load_table(("lake", "gold_hourly")).properties["commit.retry.num-retries"] == \
        TABLE_PROPERTIES["commit.retry.num-retries"]


def test_a_day_that_became_empty_is_emptied_on_rerun(local_catalog):
    con = duckdb.connect()
    con.register("positions", positions_table(hand_made_day()))
    gold.write_day(local_catalog, "lake", con, gold.compute_day(con, DAY))
    con.register("positions", positions_table([]))
    gold.write_day(local_catalog, "lake", con, gold.compute_day(con, DAY))
    assert {name: len(read_back(local_catalog, name)) for name in gold.SCHEMAS} == {n: 0 for n in gold.SCHEMAS}


def test_the_command_takes_a_date_today_or_yesterday_in_utc():
    import argparse

    from infra.lake.gold import day_argument

    assert day_argument("2026-12-06") == DAY
    assert day_argument("yesterday", today=date(2027, 1, 1)) == date(2026, 12, 31)
    assert day_argument("Today", today=DAY) == DAY
    with pytest.raises(argparse.ArgumentTypeError, match="or today / yesterday"):
        day_argument("6 Dec")
