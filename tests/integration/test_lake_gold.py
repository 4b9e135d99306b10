"""Silver and gold from the lake against the real stack: PyIceberg commits a day and a bit of positions (with a
duplicate, impossible values, a bad icao24) into a fresh namespace (SQL catalog in the stack's PostgreSQL, data
on the endpoint's S3); `python -m infra.lake.gold --day` runs twice and gives the same tables, whose totals
equal a recount done here in Python with the positions_clean rules."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import duck, gold
from lakehouse.catalog import OFFSETS_PROPERTY, POSITIONS_ARROW, encode_offsets
from lakehouse.settings import LakeSettings
from lake_support import fresh_lake

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 6)
T0 = datetime(2026, 12, 6, 22, 0, tzinfo=timezone.utc)   # 22:00 .. 00:20: the rows cross UTC midnight
COUNTRIES = ("Germany", "France", "United States", " ", "Spain")
CALLSIGNS = ("DLH{}", "AFR{}", "N{}AB", "", "ryr{} ")


def make_rows(seed: int = 7) -> list[dict]:
    """80 aircraft every 10 s for 2 h 20 min, some with a 15-minute hole, plus dirt: every 97th row
    archived twice, every 89th with an impossible value, a few bad icao24s."""
    rnd = random.Random(seed)
    rows, offset = [], 0
    for a in range(80):
        icao24 = f"{0x3c0000 + a:06x}" if a % 23 else f"{0x3c0000 + a:06X}"   # 4 upper-case: not an icao24
        country, callsign = COUNTRIES[a % 5], CALLSIGNS[a % 5].format(100 + a)
        category = (None, 2, 3, 4, 6, 1)[a % 6]
        for k in range(0, 8400, 10):
            if a % 4 == 0 and 3000 <= k < 3900:
                continue                                              # a 15-minute hole
            when = T0 + timedelta(seconds=k + a % 10)
            row = {name: None for name in POSITIONS_ARROW.names} | dict(
                icao24=icao24, time_position=when, last_contact=when, callsign=callsign, origin_country=country,
                latitude=40 + rnd.random(), longitude=2 + rnd.random(), baro_altitude=float(rnd.randrange(0, 12000)),
                on_ground=k < 300 and a % 3 == 0, velocity=200.0, true_track=90.0, vertical_rate=0.0,
                category=category, source="synthetic", kafka_partition=a % 2, kafka_offset=offset, ingested_at=when)
            offset += 1
            if offset % 89 == 0:
                row["baro_altitude"] = 90000.0 if offset % 2 else row["baro_altitude"]
                row["velocity"] = 900.0 if not offset % 2 else row["velocity"]
            rows.append(row)
            if offset % 97 == 0:
                rows.append(row | {"kafka_offset": offset + 10_000_000, "callsign": "DUP1",
                                   "ingested_at": when + timedelta(minutes=1)})
    return rows


def is_clean(r: dict) -> bool:
    """The positions_clean rules of src/tracker/migrations/0010_analytics.sql, written again in Python."""
    def within(value, low, high):
        return value is None or low <= value <= high
    return (re.fullmatch(r"[0-9a-f]{6}", r["icao24"]) is not None
            and r["latitude"] is not None and -90 <= r["latitude"] <= 90
            and r["longitude"] is not None and -180 <= r["longitude"] <= 180
            and not (r["latitude"] == 0 and r["longitude"] == 0)
            and within(r["baro_altitude"], -460, 18300) and within(r["velocity"], 0, 700)
            and within(r["true_track"], 0, 360) and (r["vertical_rate"] is None or abs(r["vertical_rate"]) <= 160))


def recount(rows: list[dict], day: date) -> dict:
    first: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: (r["ingested_at"], r["kafka_partition"], r["kafka_offset"])):
        if r["time_position"].date() == day:
            first.setdefault((r["icao24"], r["time_position"]), r)
    clean = [r for r in first.values() if is_clean(r)]
    return {"positions": len(clean), "aircraft": len({r["icao24"] for r in clean}),
            "by_country": {(r["origin_country"].strip() or "Unknown") for r in clean}}


@pytest.fixture(scope="module")
def lake(stack, database_url):
    rows = make_rows()
    with fresh_lake(database_url) as (settings, catalog, table):
        for n, start in enumerate(range(0, len(rows), 20_000)):   # as the archiver would: several commits
            batch = pa.Table.from_pylist(rows[start:start + 20_000], schema=POSITIONS_ARROW)
            table.append(batch, snapshot_properties={OFFSETS_PROPERTY: encode_offsets("aviation-data", {0: n})})
        yield settings, catalog, rows


def run_gold(settings: LakeSettings, day: date) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAKE_NAMESPACE=settings.namespace)
    return subprocess.run([sys.executable, "-m", "infra.lake.gold", "--day", day.isoformat()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def tables_now(catalog, namespace: str) -> dict[str, list[tuple]]:
    out = {}
    for name in gold.SCHEMAS:
        rows = catalog.load_table((namespace, name)).scan().to_arrow().to_pylist()
        out[name] = sorted((tuple(r.values()) for r in rows), key=repr)  # NULLs sort too
    return out


def test_the_gold_job_twice_gives_the_same_tables_whose_totals_equal_a_recount(lake):
    settings, catalog, rows = lake
    first = run_gold(settings, DAY)
    assert first.returncode == 0, first.stderr
    assert f"lake-gold: {DAY} {settings.namespace}.positions_clean: " in first.stdout
    after_first = tables_now(catalog, settings.namespace)

    second = run_gold(settings, DAY)

    assert second.returncode == 0, second.stderr
    assert tables_now(catalog, settings.namespace) == after_first
    expected = recount(rows, DAY)
    country = catalog.load_table((settings.namespace, "gold_daily_country")).scan().to_arrow().to_pylist()
    assert sum(r["positions"] for r in country) == expected["positions"]
    assert sum(r["aircraft"] for r in country) == expected["aircraft"]   # an aircraft has one country here
    assert {r["country"] for r in country} == expected["by_country"]
    silver = catalog.load_table((settings.namespace, gold.SILVER)).scan().to_arrow()
    assert silver.num_rows == expected["positions"]
    hourly = catalog.load_table((settings.namespace, "gold_hourly")).scan().to_arrow().to_pylist()
    assert sum(r["positions"] for r in hourly) == expected["positions"]
    assert sorted(r["hour"].hour for r in hourly) == [22, 23]
    categories = catalog.load_table((settings.namespace, "gold_daily_category")).scan().to_arrow().to_pylist()
    assert sum(r["positions"] for r in categories) == expected["positions"]
    assert sum(r["flight_hours"] for r in categories) == pytest.approx(sum(r["flight_hours"] for r in country))


def test_the_gold_tables_are_views_of_make_lake_sql(lake):
    settings, catalog, rows = lake
    if not catalog.table_exists((settings.namespace, "gold_daily_country")):
        assert run_gold(settings, DAY).returncode == 0
    con = duck.connect(settings, catalog=catalog)
    total, days = con.execute("SELECT sum(positions), count(DISTINCT day) FROM gold_daily_country").fetchone()
    assert (total, days) == (recount(rows, DAY)["positions"], 1)


def test_the_next_day_is_built_beside_it(lake):
    settings, catalog, rows = lake
    assert run_gold(settings, DAY).returncode == 0
    proc = run_gold(settings, DAY + timedelta(days=1))
    assert proc.returncode == 0, proc.stderr
    country = catalog.load_table((settings.namespace, "gold_daily_country")).scan().to_arrow().to_pylist()
    per_day = {d: sum(r["positions"] for r in country if r["day"] == d) for d in (DAY, DAY + timedelta(days=1))}
    assert per_day == {DAY: recount(rows, DAY)["positions"],
                       DAY + timedelta(days=1): recount(rows, DAY + timedelta(days=1))["positions"]}
