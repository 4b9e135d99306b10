"""The lake's maintenance (src/lakehouse/maintenance.py): the pure planning rules on made-up files and snapshots,
then each step on a real Iceberg table in a local catalog (SQLite + a folder; the same code runs against
PostgreSQL + S3 in tests/integration/test_lake_maintain.py), with the archiver's offsets watched throughout."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from lakehouse import maintenance as m
from lakehouse.catalog import (OFFSETS_PROPERTY, POSITIONS_ARROW, committed_offsets, encode_offsets,
                               ensure_table, load_catalog)
from lakehouse.settings import LakeSettings

MB = 1024 * 1024
DAY = date(2026, 12, 6)
T0 = datetime(2026, 12, 6, tzinfo=timezone.utc)


# ------------------------------------------------------------------ planning compaction

def ref(name: str, mb: float, partition="d=1", deletes=False) -> m.FileRef:
    return m.FileRef(partition, name, int(mb * MB), 100, deletes)


def test_small_files_are_packed_largest_first_into_bins_of_the_target_size():
    files = [ref("a", 10), ref("b", 30), ref("c", 20), ref("d", 25), ref("big", 40)]
    plan = m.plan_compaction(files, small_bytes=32 * MB, target_bytes=50 * MB)
    assert [[f.path for f in b] for b in plan["d=1"]] == [["b", "c"], ["d", "a"]]


def test_a_lone_small_file_a_file_with_deletes_and_other_partitions_stay_apart():
    files = [ref("a", 1, "d=1"), ref("b", 1, "d=2"), ref("c", 1, "d=2"), ref("x", 1, "d=1", deletes=True)]
    plan = m.plan_compaction(files, small_bytes=32 * MB, target_bytes=128 * MB)
    assert {p: [[f.path for f in b] for b in bins] for p, bins in plan.items()} == {"d=2": [["b", "c"]]}


def test_nothing_to_plan_when_every_file_is_large():
    assert m.plan_compaction([ref("a", 64), ref("b", 64)], small_bytes=32 * MB, target_bytes=128 * MB) == {}


# ------------------------------------------------------------------ planning expiry

def test_expiry_keeps_the_newest_n_the_protected_and_the_young():
    now = 10_000_000
    snaps = [m.SnapshotRef(i, now - (10 - i) * 1000_000) for i in range(10)]  # 0 is the oldest
    assert m.plan_expiry(snaps, protected={1}, keep_last=3, max_age_ms=4000_000, now_ms=now) == [0, 2, 3, 4, 5]
    assert m.plan_expiry(snaps, protected=set(), keep_last=10, max_age_ms=0, now_ms=now) == []
    assert m.plan_expiry(snaps[-1:], protected=set(), keep_last=1, max_age_ms=0, now_ms=now) == []


# ------------------------------------------------------------------ finding orphans

def listed(path: str, age_s: float | None, now=1_000_000.0) -> m.ListedFile:
    return m.ListedFile(path, 10, None if age_s is None else now - age_s)


def test_orphans_are_unreferenced_old_files_of_this_table_only():
    root = "bucket/wh/ns.db/positions"
    files = [listed(f"{root}/data/d=1/old.parquet", 7200), listed(f"{root}/data/d=1/live.parquet", 7200),
             listed(f"{root}/data/d=1/fresh.parquet", 60), listed(f"{root}/metadata/00001-x.metadata.json", 7200),
             listed(f"{root}/metadata/no-mtime.avro", None), listed(f"{root}_clean/data/d=1/other.parquet", 7200),
             listed(f"{root}/notes.txt", 7200), listed(f"{root}/metadata/version-hint.text", 7200)]
    old, young = m.find_orphans(files, {f"{root}/data/d=1/live.parquet"}, root, min_age_s=3600, now_s=1_000_000.0)
    assert sorted(f.path for f in old) == [f"{root}/data/d=1/old.parquet", f"{root}/metadata/00001-x.metadata.json"]
    assert sorted(f.path for f in young) == [f"{root}/data/d=1/fresh.parquet", f"{root}/metadata/no-mtime.avro"]


def test_paths_compare_without_their_scheme():
    assert m.normalize("s3://bucket/wh/t/data/f.parquet") == "bucket/wh/t/data/f.parquet"
    assert m.normalize("file:///tmp/wh/t/data/f.parquet") == "/tmp/wh/t/data/f.parquet"


def test_the_orphan_window_cannot_be_set_below_ten_minutes():
    with pytest.raises(ValueError, match="LAKE_ORPHAN_MIN_AGE_S=60.0 is below the minimum 600"):
        m.MaintenanceSettings.from_env({"LAKE_ORPHAN_MIN_AGE_S": "60"})


# ------------------------------------------------------------------ on a real table (local catalog)

def positions(n: int, first_offset: int, day_offset: int = 0) -> pa.Table:
    """n positions of 7 aircraft, 5 s apart, in reverse order (so a sorted rewrite is visibly sorted)."""
    rows = []
    for i in reversed(range(n)):
        k = first_offset + i
        when = T0 + timedelta(days=day_offset, seconds=5 * k)
        rows.append({name: None for name in POSITIONS_ARROW.names} | dict(
            icao24=f"{k % 7:06x}", time_position=when, last_contact=when, on_ground=False, latitude=50.0,
            longitude=8.0, kafka_partition=0, kafka_offset=k, ingested_at=when))
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW)


def archiver_commit(table, rows: pa.Table, next_offset: int) -> None:
    """As src/archiver commits: the rows and the next offset, in the summary and as a table property."""
    text = encode_offsets("aviation-data", {0: next_offset})
    with table.transaction() as tx:
        tx.append(rows, snapshot_properties={OFFSETS_PROPERTY: text})
        tx.set_properties({OFFSETS_PROPERTY: text})


@pytest.fixture
def lake(tmp_path):
    settings = LakeSettings(catalog_uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/wh")
    catalog = load_catalog(settings)
    table = ensure_table(catalog, settings)
    return settings, catalog, table


@pytest.fixture
def twenty_appends(lake):
    settings, catalog, table = lake
    for i in range(20):
        archiver_commit(table, positions(50, i * 50, day_offset=i % 2), next_offset=(i + 1) * 50)
    return settings, catalog, catalog.load_table(settings.identifier)


def key_rows(table) -> list[tuple]:
    return sorted((r["icao24"], r["time_position"], r["kafka_offset"]) for r in table.scan().to_arrow().to_pylist())


SETTINGS = m.MaintenanceSettings()


def test_compaction_keeps_the_rows_and_the_offsets_in_fewer_sorted_files(twenty_appends):
    settings, catalog, table = twenty_appends
    before_rows, before_offsets = key_rows(table), committed_offsets(table)
    before_summary = table.current_snapshot().summary[OFFSETS_PROPERTY]
    assert len(table.inspect.files()) == 20

    reports = m.compact(table, SETTINGS)

    table = catalog.load_table(settings.identifier)
    assert [(r.files_before, r.files_after, r.rows, r.error) for r in reports] == [(10, 1, 500, None)] * 2
    assert key_rows(table) == before_rows
    assert len(table.inspect.files()) == 2
    assert table.current_snapshot().summary[OFFSETS_PROPERTY] == before_summary
    assert committed_offsets(table) == before_offsets == {0: 1000}
    for task in table.scan().plan_files():  # each new file is in the table's sort order
        rows = [(r["icao24"], r["time_position"]) for r in read_file(table, task)]
        assert rows == sorted(rows)
    assert reports[0].line().startswith("compaction time_position_day=2026-12-06: 10 files (")
    assert " kB) -> 1 (" in reports[0].line() and ", 500 rows, snapshot " in reports[0].line()


def read_file(table, task) -> list[dict]:
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return pq.read_table(PyArrowFileIO.parse_location(task.file.file_path)[2]).to_pylist()


def test_compaction_of_one_day_leaves_the_other_alone(twenty_appends):
    settings, catalog, table = twenty_appends
    reports = m.compact(table, SETTINGS, day=DAY)
    assert [r.partition for r in reports] == ["time_position_day=2026-12-06"]
    assert len(catalog.load_table(settings.identifier).inspect.files()) == 1 + 10


def test_expiry_then_sweep_removes_only_what_nothing_references(twenty_appends):
    settings, catalog, table = twenty_appends
    m.compact(table, SETTINGS)
    rows = key_rows(table)
    expiry = m.expire(table, m.MaintenanceSettings(keep_snapshots=2, snapshot_max_age_s=0))
    assert (expiry.snapshots_before, expiry.snapshots_after) == (22, 2)
    assert expiry.expired == 20

    report = m.sweep(table, min_age_s=0)

    table = catalog.load_table(settings.identifier)
    referenced = m.referenced_files(table)
    on_disk = {f.path for f in m.list_table_files(table)}
    assert referenced <= on_disk                                  # never a referenced file
    assert on_disk - referenced == set()                          # and every orphan went
    assert report.orphans >= 20                                   # the 20 small files at least
    assert key_rows(table) == rows
    assert committed_offsets(table) == {0: 1000}


def test_the_sweep_leaves_young_orphans_and_a_dry_run_deletes_nothing(twenty_appends):
    settings, catalog, table = twenty_appends
    m.compact(table, SETTINGS)
    m.expire(table, m.MaintenanceSettings(keep_snapshots=1, snapshot_max_age_s=0))
    young = m.sweep(table, min_age_s=3600)
    assert young.orphans == 0 and young.too_young >= 20
    dry = m.sweep(table, min_age_s=0, dry_run=True)
    assert dry.orphans == young.too_young and "would remove" in dry.line()
    assert m.sweep(table, min_age_s=0).orphans == dry.orphans


def test_expiry_keeps_the_newest_snapshot_that_carries_the_offsets(lake):
    settings, catalog, table = lake
    archiver_commit(table, positions(5, 0), next_offset=5)
    carrying = table.current_snapshot().snapshot_id
    table.append(positions(5, 100))              # another tool's commit, without offsets in its summary
    m.expire(table, m.MaintenanceSettings(keep_snapshots=1, snapshot_max_age_s=0))
    assert carrying in {s.snapshot_id for s in catalog.load_table(settings.identifier).snapshots()}


def test_an_archiver_commit_during_compaction_makes_the_compaction_plan_again(twenty_appends, monkeypatch):
    settings, catalog, table = twenty_appends
    archiver = catalog.load_table(settings.identifier)
    real = m.carried_properties
    calls = []

    def archiver_commits_first(t, step):
        calls.append(step)
        if len(calls) == 1:   # the archiver commits between the compaction's read and its commit
            archiver_commit(archiver, positions(50, 1000, day_offset=0), next_offset=1050)
        return real(t, step)
    monkeypatch.setattr(m, "carried_properties", archiver_commits_first)

    reports = m.compact(table, SETTINGS, day=DAY)

    table = catalog.load_table(settings.identifier)
    assert reports[0].attempts == 2 and reports[0].error is None
    assert reports[0].files_before == 11                          # the archiver's new small file too
    assert table.current_snapshot().summary[OFFSETS_PROPERTY] == encode_offsets("aviation-data", {0: 1050})
    assert committed_offsets(table) == {0: 1050}
    assert len(key_rows(table)) == 1050
    # the refused attempt's files were removed: only the live files are under data/ (nothing expired yet)
    data = {f.path for f in m.list_table_files(table) if "/data/" in f.path}
    live = {m.normalize(p) for p in table.inspect.all_files()["file_path"].to_pylist()}
    assert data == live


def test_a_compaction_commit_refuses_the_archiver_which_resumes_from_the_carried_offsets(twenty_appends):
    settings, catalog, table = twenty_appends
    archiver = catalog.load_table(settings.identifier)           # the archiver's view before the compaction
    m.compact(table, SETTINGS)
    with pytest.raises(CommitFailedException):
        archiver_commit(archiver, positions(50, 1000), next_offset=1050)
    archiver.refresh()                                            # what the archiver does on a refusal
    assert committed_offsets(archiver) == {0: 1000}               # it re-reads from offset 1000: nothing lost
    archiver_commit(archiver, positions(50, 1000), next_offset=1050)
    assert len(key_rows(catalog.load_table(settings.identifier))) == 1050


def test_maintain_reports_each_step(twenty_appends):
    _, _, table = twenty_appends
    report = m.maintain(table, m.MaintenanceSettings(keep_snapshots=1, snapshot_max_age_s=0))
    lines = report.lines()
    assert [line.split(": ")[1] for line in lines] == ["compaction time_position_day=2026-12-06",
                                                       "compaction time_position_day=2026-12-07",
                                                       "snapshot expiry", "orphan sweep"]
    assert all(line.startswith("flightpipe.positions: ") for line in lines)


def test_the_command_prints_a_line_per_step_and_exits_0(twenty_appends, capsys):
    from infra.lake import maintain as cli

    settings, _, _ = twenty_appends
    code = cli.main(["--catalog-uri", settings.catalog_uri, "--warehouse", settings.warehouse,
                     "--keep-snapshots", "1", "--snapshot-max-age-s", "0", "--steps", "compact,expire"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("lake-maintain: flightpipe.positions: compaction time_position_day=2026-12-06: 10 files")
    assert out[-1] == "lake-maintain: flightpipe.positions: snapshot expiry: 22 snapshots -> 1 (21 expired)"


def test_the_command_refuses_an_unknown_step(capsys):
    from infra.lake import maintain as cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--steps", "compact,vacuum"])
    assert exit_.value.code == 2
    assert "say some of compact,expire,sweep" in capsys.readouterr().err


def test_an_s3_tables_table_is_left_to_s3_tables_unless_a_step_is_named(capsys, monkeypatch):
    from infra.lake import maintain as cli
    arn = "arn:aws:s3tables:eu-west-1:123456789012:bucket/flightpipe-lake"
    monkeypatch.setenv("LAKE_CATALOG_TYPE", "rest")
    monkeypatch.setenv("LAKE_WAREHOUSE", arn)
    opened = []
    monkeypatch.setattr("lakehouse.catalog.load_catalog", lambda lake: opened.append(lake) or (_ for _ in ()).throw(
        RuntimeError("no AWS here")))
    assert cli.main([]) == 0
    assert "S3 Tables maintains this table itself" in capsys.readouterr().out and not opened
    # Asked for explicitly, the step runs (and here fails to reach AWS, which it says).
    assert cli.main(["--steps", "expire"]) == 1 and opened
    assert not LakeSettings.from_env({"LAKE_CATALOG_TYPE": "rest", "LAKE_WAREHOUSE": "s3://b/w"}).maintained_by_s3_tables
