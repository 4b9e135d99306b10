"""The lake's maintenance against the real stack (SQL catalog in the stack's PostgreSQL, files on the endpoint's
S3): 20 small archiver-like commits -> `python -m infra.lake.maintain` compacts them into fewer files with the
same rows and the offsets unchanged; expiry and the sweep then remove what nothing references, never a
referenced file, never a file of the sibling table; and the archiver-vs-compaction race, both ways."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from lakehouse import duck
from lakehouse import maintenance as m
from lakehouse.catalog import OFFSETS_PROPERTY, POSITIONS_ARROW, committed_offsets, encode_offsets
from lakehouse.settings import LakeSettings
from lake_support import fresh_lake

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 23, 50, tzinfo=timezone.utc)
APPENDS, ROWS = 20, 100


def positions(n: int, first_offset: int) -> pa.Table:
    rows = []
    for k in range(first_offset, first_offset + n):
        when = T0 + timedelta(seconds=5 * k)   # 20 x 100 rows, 23:50 .. 02:36: two day partitions
        rows.append({name: None for name in POSITIONS_ARROW.names} | dict(
            icao24=f"{0x4b0000 + k % 13:06x}", time_position=when, last_contact=when, on_ground=False,
            latitude=47.0, longitude=8.0, kafka_partition=0, kafka_offset=k, ingested_at=when))
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW).sort_by([("icao24", "ascending"),
                                                                        ("time_position", "ascending")])


def archiver_commit(table, first_offset: int, n: int = ROWS) -> None:
    """As src/archiver commits: the rows, and the next offset in the summary and as a table property."""
    text = encode_offsets("aviation-data", {0: first_offset + n})
    with table.transaction() as tx:
        tx.append(positions(n, first_offset), snapshot_properties={OFFSETS_PROPERTY: text})
        tx.set_properties({OFFSETS_PROPERTY: text})


@pytest.fixture
def lake(stack, database_url):
    with fresh_lake(database_url) as (settings, catalog, table):
        for i in range(APPENDS):
            archiver_commit(table, i * ROWS)
        yield settings, catalog


def s3_keys(settings: LakeSettings, table) -> set[str]:
    """The table's files as S3 itself lists them (boto3, not the code under test): bucket/key. Keys ending in
    "/" are the empty folder markers pyarrow's S3 file system leaves, not files."""
    bucket, _, prefix = table.location().split("://", 1)[1].partition("/")
    s3 = boto3.client("s3", region_name=settings.aws_region)
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        keys |= {f"{bucket}/{o['Key']}" for o in page.get("Contents", []) if not o["Key"].endswith("/")}
    return keys


def rows_of(table) -> list[tuple]:
    return sorted((r["icao24"], r["time_position"], r["kafka_offset"]) for r in table.scan().to_arrow().to_pylist())


def maintain_cli(settings: LakeSettings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAKE_NAMESPACE=settings.namespace)
    return subprocess.run([sys.executable, "-m", "infra.lake.maintain", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_compaction_gives_the_same_rows_in_fewer_files_with_the_offsets_unchanged(lake):
    settings, catalog = lake
    table = catalog.load_table(settings.identifier)
    rows, files = rows_of(table), len(table.inspect.files())
    summary, offsets = table.current_snapshot().summary[OFFSETS_PROPERTY], committed_offsets(table)
    assert files >= APPENDS

    proc = maintain_cli(settings, "--steps", "compact")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("compaction time_position_day=") == 2, proc.stdout
    table = catalog.load_table(settings.identifier)
    assert rows_of(table) == rows
    assert len(table.inspect.files()) == 2                        # one per day
    assert table.current_snapshot().summary[OFFSETS_PROPERTY] == summary
    assert committed_offsets(table) == offsets == {0: APPENDS * ROWS}
    assert duck.connect(settings, catalog=catalog).execute("SELECT count(*) FROM positions").fetchone() == (len(rows),)


def test_expiry_and_the_sweep_remove_what_nothing_references_and_never_what_something_does(lake):
    settings, catalog = lake
    table = catalog.load_table(settings.identifier)
    sibling = catalog.create_table((settings.namespace, f"{settings.table}_clean"), schema=table.schema())
    sibling.append(positions(10, 0))                          # a table whose location starts like this one's
    sibling_keys = s3_keys(settings, sibling)
    rows = rows_of(table)
    assert maintain_cli(settings, "--steps", "compact,expire", "--keep-snapshots", "1",
                        "--snapshot-max-age-s", "0").returncode == 0
    dry = maintain_cli(settings, "--steps", "sweep", "--dry-run")
    assert dry.returncode == 0 and "would remove 0 " in dry.stdout and "too young" in dry.stdout, dry.stdout
    table = catalog.load_table(settings.identifier)
    before = s3_keys(settings, table)

    report = m.sweep(table, min_age_s=0)                      # the command refuses a window under 10 minutes

    table = catalog.load_table(settings.identifier)
    after = s3_keys(settings, table)
    referenced = m.referenced_files(table)
    assert referenced <= after                                # every referenced file is still there
    assert report.orphans == len(before - after) >= APPENDS   # the 20 small files (and old manifests) went
    assert not {k for k in after - referenced if "/data/" in k or k.endswith(".avro")}
    assert s3_keys(settings, sibling) == sibling_keys          # the sibling table untouched
    assert rows_of(table) == rows
    assert committed_offsets(table) == {0: APPENDS * ROWS}
    assert duck.connect(settings, catalog=catalog).execute("SELECT count(*) FROM positions").fetchone() == (len(rows),)


def test_an_archiver_that_loses_the_race_to_compaction_resumes_from_the_carried_offsets(lake):
    settings, catalog = lake
    archiver = catalog.load_table(settings.identifier)            # loaded before the compaction commits
    m.compact(catalog.load_table(settings.identifier), m.MaintenanceSettings())
    with pytest.raises(CommitFailedException):
        archiver_commit(archiver, APPENDS * ROWS)
    archiver.refresh()
    assert committed_offsets(archiver) == {0: APPENDS * ROWS}      # re-reads the refused batch: nothing lost
    archiver_commit(archiver, APPENDS * ROWS)
    table = catalog.load_table(settings.identifier)
    assert len(rows_of(table)) == len({r[2] for r in rows_of(table)}) == (APPENDS + 1) * ROWS  # nothing doubled


def test_a_compaction_that_loses_the_race_to_the_archiver_plans_again(lake, monkeypatch):
    settings, catalog = lake
    archiver = catalog.load_table(settings.identifier)
    real, calls = m.carried_properties, []

    def archiver_commits_meanwhile(table, step):
        calls.append(step)
        if len(calls) == 1:
            archiver_commit(archiver, APPENDS * ROWS)
        return real(table, step)
    monkeypatch.setattr(m, "carried_properties", archiver_commits_meanwhile)

    reports = m.compact(catalog.load_table(settings.identifier), m.MaintenanceSettings())

    assert reports[0].attempts == 2 and all(r.error is None for r in reports)
    table = catalog.load_table(settings.identifier)
    assert committed_offsets(table) == {0: (APPENDS + 1) * ROWS}
    assert table.current_snapshot().summary[OFFSETS_PROPERTY] == encode_offsets("aviation-data",
                                                                                {0: (APPENDS + 1) * ROWS})
    assert len(rows_of(table)) == (APPENDS + 1) * ROWS
    live = {m.normalize(p) for p in table.inspect.all_files()["file_path"].to_pylist()}
    assert {k for k in s3_keys(settings, table) if "/data/" in k} == live   # the refused attempt left no file
