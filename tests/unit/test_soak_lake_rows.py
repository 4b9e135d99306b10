"""The soak's lake check (infra/soak/lake_rows.py) on a real Iceberg table in a file catalog: the run's offset
range read back and compared key for key with the Kafka recount's distinct positions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from infra.demo.tracker_recount import TrackerRecount
from infra.soak import lake_rows
from lakehouse.catalog import (OFFSETS_PROPERTY, POSITIONS_ARROW, encode_offsets, ensure_rejects_table, ensure_table,
                               load_catalog)
from lakehouse.settings import LakeSettings

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def settings(tmp_path) -> LakeSettings:
    return LakeSettings.from_env({}, catalog_uri=f"sqlite:///{tmp_path}/catalog.db",
                                 warehouse=f"file://{tmp_path}/warehouse", namespace="soak")


def archive(settings, offsets: list[int], end: int) -> None:
    """One row per offset of partition 0 (aircraft = offset % 5, a second per offset), committed with `end`."""
    catalog = load_catalog(settings)
    table = ensure_table(catalog, settings)
    ensure_rejects_table(catalog, settings)
    n = len(offsets)
    cols = {name: [None] * n for name in POSITIONS_ARROW.names}
    times = [T0 + timedelta(seconds=o) for o in offsets]
    cols.update(icao24=[f"{o % 5:06x}" for o in offsets], time_position=times, last_contact=times,
                on_ground=[False] * n, kafka_partition=[0] * n, kafka_offset=offsets, ingested_at=times)
    table.append(pa.Table.from_pydict(cols, schema=POSITIONS_ARROW),
                 snapshot_properties={OFFSETS_PROPERTY: encode_offsets("aviation-data", {0: end})})


def run_recount(first: int, end: int) -> TrackerRecount:
    keys = {(f"{o % 5:06x}", T0 + timedelta(seconds=o)) for o in range(first, end)}
    return TrackerRecount(records=end - first, distinct_positions=len(keys), keys=keys, ranges={0: (first, end)})


def test_the_runs_rows_equal_the_recount_and_rows_before_the_run_do_not_count(settings):
    archive(settings, list(range(0, 100)), 100)          # an earlier session's rows: outside the run's range
    archive(settings, list(range(100, 400)), 400)
    figures, checks = lake_rows.reconcile(run_recount(100, 400), "aviation-data", settings)
    assert all(ok for _, ok, _ in checks), checks
    assert (figures["rows"], figures["distinct_positions"], figures["doubled"]) == (300, 300, 0)


def test_a_doubled_and_a_missing_row_fail_with_their_counts(settings):
    archive(settings, [o for o in range(0, 300) if o != 17] + [42], 300)
    figures, checks = lake_rows.reconcile(run_recount(0, 300), "aviation-data", settings)
    ok, detail = dict((name, (ok, d)) for name, ok, d in checks)[lake_rows.ROWS_CHECK]
    assert not ok and "1 missing" in detail and "1 doubled" in detail


def test_a_lake_behind_the_run_fails_the_offsets_check(settings):
    archive(settings, list(range(0, 250)), 250)
    _, checks = lake_rows.reconcile(run_recount(0, 300), "aviation-data", settings)
    by_name = {name: ok for name, ok, _ in checks}
    assert not by_name[lake_rows.OFFSETS_CHECK] and not by_name[lake_rows.ROWS_CHECK]


def test_an_unreadable_lake_is_a_failed_check_with_the_reason(settings):
    _, checks = lake_rows.reconcile(run_recount(0, 10), "aviation-data", settings)   # never created
    assert checks[0][0] == lake_rows.ROWS_CHECK and not checks[0][1] and "NoSuchTableError" in checks[0][2]
