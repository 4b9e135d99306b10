"""The lake's code is catalog-agnostic: besides the SQL catalog of record (tested everywhere else), the AWS
catalogs' shapes work against the real endpoint: Glue (LAKE_CATALOG_TYPE=glue) and S3 Tables' Iceberg REST
catalog (LAKE_CATALOG_TYPE=rest, every request SigV4-signed as on AWS). A commit's Kafka offsets travel with
it and a fresh catalog reads them back, which is what the archiver's exactly-once rests on."""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import boto3
import pyarrow as pa
import pytest

from lakehouse.catalog import (OFFSETS_PROPERTY, POSITIONS_ARROW, committed_offsets, encode_offsets, ensure_table,
                               load_catalog)
from lakehouse.settings import LakeSettings


def rows(n: int) -> pa.Table:
    t = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
    cols = {name: [None] * n for name in POSITIONS_ARROW.names}
    cols.update(icao24=[f"{i:06x}" for i in range(n)], time_position=[t] * n, last_contact=[t] * n,
                on_ground=[False] * n, kafka_partition=[0] * n, kafka_offset=list(range(n)), ingested_at=[t] * n)
    return pa.Table.from_pydict(cols, schema=POSITIONS_ARROW)


def commit_and_read_back(settings: LakeSettings) -> tuple[int, dict[int, int]]:
    table = ensure_table(load_catalog(settings), settings)
    table.append(rows(250), snapshot_properties={OFFSETS_PROPERTY: encode_offsets("aviation-data", {0: 250})})
    fresh = load_catalog(settings).load_table(settings.identifier)   # another catalog client, as a restart would
    return fresh.scan().to_arrow().num_rows, committed_offsets(fresh, "aviation-data")


def test_glue_catalog(stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    settings = LakeSettings.from_env({**os.environ, "LAKE_CATALOG_TYPE": "glue",
                                      "LAKE_NAMESPACE": f"it_glue_{uuid.uuid4().hex[:8]}"})
    catalog = load_catalog(settings)
    try:
        assert commit_and_read_back(settings) == (250, {0: 250})
        # Loaded, not created again: the same table.
        assert ensure_table(catalog, settings).metadata.table_uuid == catalog.load_table(settings.identifier).metadata.table_uuid
    finally:
        catalog.purge_table(settings.identifier)
        catalog.drop_namespace(settings.namespace)


def test_s3_tables_rest_catalog_signed(stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    s3tables = boto3.client("s3tables", endpoint_url=stack.endpoint)
    bucket = f"it-rest-{uuid.uuid4().hex[:8]}"
    arn = s3tables.create_table_bucket(name=bucket)["arn"]
    settings = LakeSettings.from_env({**os.environ, "LAKE_CATALOG_TYPE": "rest", "LAKE_WAREHOUSE": arn,
                                      "LAKE_CATALOG_URI": f"{stack.endpoint}/iceberg", "LAKE_NAMESPACE": "flightpipe"})
    try:
        assert settings.catalog_properties()["rest.sigv4-enabled"] == "true"
        assert commit_and_read_back(settings) == (250, {0: 250})
    finally:
        # MiniStack's REST catalog has no DropTable: the control plane deletes it.
        s3tables.delete_table(tableBucketARN=arn, namespace="flightpipe", name=settings.table)
        s3tables.delete_namespace(tableBucketARN=arn, namespace="flightpipe")
        s3tables.delete_table_bucket(tableBucketARN=arn)
