"""The lake's tables as created (schema, partition spec, sort order, properties) and the offsets each
archiver commit carries, on a real PyIceberg SqlCatalog over SQLite with a local warehouse (no server)."""
from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.transforms import DayTransform, IdentityTransform

from lakehouse.catalog import (OFFSETS_PROPERTY, POSITIONS_ARROW, committed_offsets, decode_offsets, encode_offsets,
                               ensure_rejects_table, ensure_table, load_catalog, merge_offsets,
                               offsets_snapshot_properties, positions_table)
from lakehouse.settings import LakeSettings, sqlalchemy_url
from pipeline_common.settings import ConfigError
from tracker.records import COLUMNS


@pytest.fixture
def settings(tmp_path) -> LakeSettings:
    return LakeSettings.from_env({}, catalog_uri=f"sqlite:///{tmp_path}/catalog.db",
                                 warehouse=f"file://{tmp_path}/warehouse", namespace="unit")


def _rows(n: int, start_offset: int = 0) -> pa.Table:
    t = datetime(2026, 12, 6, 23, 59, tzinfo=timezone.utc)
    cols = {name: [None] * n for name in POSITIONS_ARROW.names}
    cols.update(icao24=[f"{i:06x}" for i in range(n)], time_position=[t] * n, last_contact=[t] * n,
                on_ground=[False] * n, kafka_partition=[0] * n, kafka_offset=list(range(start_offset, start_offset + n)),
                ingested_at=[t] * n)
    return pa.Table.from_pydict(cols, schema=POSITIONS_ARROW)


def _append(table, n, start, offsets):
    text = encode_offsets("aviation-data", offsets)
    with table.transaction() as tx:
        tx.append(_rows(n, start), snapshot_properties={OFFSETS_PROPERTY: text})
        tx.set_properties({OFFSETS_PROPERTY: text})


def test_positions_table_has_the_trackers_columns_day_partitions_and_the_sort_order(settings):
    table = ensure_table(load_catalog(settings), settings)
    assert [f.name for f in table.schema().fields] == [*COLUMNS, "ingested_at"]
    assert table.schema().find_field("icao24").required and not table.schema().find_field("callsign").required
    assert [table.schema().find_field(i).name for i in table.schema().identifier_field_ids] == ["icao24", "time_position"]
    (day,) = table.spec().fields
    assert isinstance(day.transform, DayTransform) and table.schema().find_field(day.source_id).name == "time_position"
    assert [(table.schema().find_field(f.source_id).name, type(f.transform)) for f in table.sort_order().fields] == \
        [("icao24", IdentityTransform), ("time_position", IdentityTransform)]
    assert table.properties["commit.retry.num-retries"] == "0"


def test_ensure_table_twice_is_the_same_table(settings):
    catalog = load_catalog(settings)
    first = ensure_table(catalog, settings)
    second = ensure_table(load_catalog(settings), settings)
    assert first.metadata.table_uuid == second.metadata.table_uuid
    assert ensure_rejects_table(catalog, settings).name() == ("unit", "positions_rejects")


def test_ensuring_an_existing_table_writes_no_file(settings, tmp_path):
    # create_table writes a metadata file before a duplicate is refused: every archiver start, deploy and
    # demo used to leave one orphan in the warehouse.
    ensure_table(load_catalog(settings), settings)
    before = sorted(tmp_path.joinpath("warehouse").rglob("*"))
    ensure_table(load_catalog(settings), settings)
    ensure_table(load_catalog(settings), settings)
    assert sorted(tmp_path.joinpath("warehouse").rglob("*")) == before


def test_offsets_travel_with_the_commit_and_a_fresh_catalog_reads_them_back(settings):
    table = ensure_table(load_catalog(settings), settings)
    assert committed_offsets(table) == {}
    _append(table, 10, 0, {0: 10, 1: 0})
    fresh = positions_table(settings)  # another process's view: a new catalog connection
    assert committed_offsets(fresh, "aviation-data") == {0: 10, 1: 0}
    assert fresh.scan().to_arrow().num_rows == 10
    assert fresh.current_snapshot().summary.additional_properties[OFFSETS_PROPERTY] == '{"aviation-data":{"0":10,"1":0}}'


def test_a_stale_writer_is_refused_not_appended_twice(settings):
    table = ensure_table(load_catalog(settings), settings)
    stale = positions_table(settings)
    _append(table, 10, 0, {0: 10})
    with pytest.raises(CommitFailedException):
        _append(stale, 10, 0, {0: 10})
    assert positions_table(settings).scan().to_arrow().num_rows == 10


def test_offsets_survive_a_later_snapshot_without_them(settings):
    # e.g. a compaction by another tool: its snapshot's summary has no offsets
    table = ensure_table(load_catalog(settings), settings)
    _append(table, 5, 0, {0: 5})
    table = positions_table(settings)
    table.append(_rows(1, 5))
    table = positions_table(settings)
    assert OFFSETS_PROPERTY not in table.current_snapshot().summary.additional_properties
    assert committed_offsets(table) == {0: 5}
    assert decode_offsets(offsets_snapshot_properties(table)[OFFSETS_PROPERTY]) == {0: 5}


def test_offsets_maps_merge_by_the_furthest_offset_and_are_kept_per_topic():
    assert merge_offsets({0: 5, 1: 9}, {0: 7, 2: 1}) == {0: 7, 1: 9, 2: 1}
    assert decode_offsets(encode_offsets("a", {2: 3, 0: 1}), "a") == {0: 1, 2: 3}
    assert decode_offsets(encode_offsets("a", {0: 1}), "other") == {}
    assert decode_offsets(None) == {}


def test_settings_default_to_the_trackers_database_for_sqlalchemy_and_path_style_s3_locally():
    s = LakeSettings.from_env({"POSTGRES_PORT": "5544", "AWS_ENDPOINT_URL": "http://localhost:4566"})
    assert s.catalog_url == "postgresql+psycopg://flightpipe@127.0.0.1:5544/flightpipe"
    assert s.catalog_properties()["s3.force-virtual-addressing"] == "false"
    assert s.warehouse_bucket == "flightpipe-lake" and s.identifier == ("flightpipe", "positions")
    assert LakeSettings.from_env({"DATABASE_URL": "postgres://u:p@db:5432/x"}).catalog_url == \
        "postgresql+psycopg://u:p@db:5432/x"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
    assert "s3.endpoint" not in LakeSettings.from_env({}).catalog_properties()  # real AWS: the SDK's own endpoint


def test_on_aws_the_same_code_speaks_to_s3_tables_signed_or_to_glue():
    arn = "arn:aws:s3tables:eu-west-1:123456789012:bucket/flightpipe-lake"
    rest = LakeSettings.from_env({"LAKE_CATALOG_TYPE": "rest", "LAKE_WAREHOUSE": arn, "AWS_REGION": "eu-west-1"})
    assert rest.catalog_properties() == {
        "type": "rest", "warehouse": arn, "uri": "https://s3tables.eu-west-1.amazonaws.com/iceberg",
        "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables", "rest.signing-region": "eu-west-1",
        "s3.region": "eu-west-1", "s3.request-timeout": "60", "s3.connect-timeout": "30"}
    glue = LakeSettings.from_env({"LAKE_CATALOG_TYPE": "glue", "LAKE_WAREHOUSE": "s3://b/w", "AWS_REGION": "eu-west-1"})
    assert glue.catalog_properties() == {"type": "glue", "warehouse": "s3://b/w", "glue.region": "eu-west-1",
                                         "s3.region": "eu-west-1", "s3.request-timeout": "60",
                                         "s3.connect-timeout": "30"}
    # A table bucket ARN is a warehouse only for the REST catalog.
    with pytest.raises(ConfigError, match="LAKE_WAREHOUSE"):
        LakeSettings.from_env({"LAKE_WAREHOUSE": arn})
    with pytest.raises(ConfigError, match="LAKE_CATALOG_TYPE"):
        LakeSettings.from_env({"LAKE_CATALOG_TYPE": "hive"})


def test_settings_refuse_a_dotted_table_name_and_a_non_positive_commit_size():
    with pytest.raises(ConfigError, match="LAKE_TABLE"):
        LakeSettings.from_env({"LAKE_TABLE": "a.b"})
    with pytest.raises(ConfigError, match="LAKE_COMMIT_ROWS"):
        LakeSettings.from_env({"LAKE_COMMIT_ROWS": "0"})


def test_a_table_whose_files_are_gone_is_refused_and_only_the_deploy_tool_replaces_it(settings, tmp_path):
    import shutil
    from lakehouse.catalog import LostTable
    table = ensure_table(load_catalog(settings), settings)
    _append(table, 3, 0, {0: 3})
    shutil.rmtree(tmp_path / "warehouse")  # e.g. an endpoint that kept S3 in memory was restarted
    with pytest.raises(LostTable, match="infra.lake.create"):
        ensure_table(load_catalog(settings), settings)
    fresh = ensure_table(load_catalog(settings), settings, replace_lost=True)
    assert fresh.current_snapshot() is None and committed_offsets(fresh) == {}
