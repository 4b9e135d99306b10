"""The lake's Iceberg catalog and tables: the positions table (the tracker's row schema + ingested_at,
hidden partitioning by day of time_position, sorted by icao24, time_position), the archiver's rejects
table, and the Kafka offsets every archiver commit carries.

Exactly once rests on OFFSETS_PROPERTY: each commit of the archiver records the full map of next
offsets to read, per partition, in its snapshot's summary and, in the same transaction, as a table
property. The summary is the Iceberg way (Spark, Athena and `inspect.snapshots()` show it); the table
property survives what the summary does not: a compaction or snapshot expiry by another tool commits
snapshots without it, and expiry can drop every snapshot that had it.
"""
from __future__ import annotations

import json
import logging
from typing import Mapping

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog import load_catalog as pyiceberg_load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (BinaryType, BooleanType, DoubleType, FloatType, IcebergType, IntegerType, LongType,
                             NestedField, StringType, TimestamptzType)

from tracker.records import COLUMNS

from .settings import LakeSettings

logger = logging.getLogger(__name__)

OFFSETS_PROPERTY = "flightpipe.kafka-offsets"
INGESTED_AT = "ingested_at"

# The columns of src/tracker/migrations/0001_positions.sql as Iceberg types (text -> string, real -> float,
# smallint -> int: Iceberg has no 16-bit integer), and whether the column is NOT NULL there.
_COLUMN_TYPES: dict[str, tuple[IcebergType, bool]] = {
    "icao24": (StringType(), True),
    "time_position": (TimestamptzType(), True),
    "last_contact": (TimestamptzType(), True),
    "callsign": (StringType(), False),
    "origin_country": (StringType(), False),
    "longitude": (DoubleType(), False),
    "latitude": (DoubleType(), False),
    "baro_altitude": (FloatType(), False),
    "geo_altitude": (FloatType(), False),
    "on_ground": (BooleanType(), True),
    "velocity": (FloatType(), False),
    "true_track": (FloatType(), False),
    "vertical_rate": (FloatType(), False),
    "squawk": (StringType(), False),
    "category": (IntegerType(), False),
    "position_source": (IntegerType(), False),
    "source": (StringType(), False),
    "kafka_partition": (IntegerType(), True),
    "kafka_offset": (LongType(), True),
    INGESTED_AT: (TimestamptzType(), True),
}

_ARROW_TYPES = {StringType(): pa.string(), TimestamptzType(): pa.timestamp("us", tz="UTC"), DoubleType(): pa.float64(),
                FloatType(): pa.float32(), BooleanType(): pa.bool_(), IntegerType(): pa.int32(), LongType(): pa.int64(),
                BinaryType(): pa.binary()}

# What every table of the lake is created with.
TABLE_PROPERTIES = {
    # Never rebase a refused commit onto the winner's: the archiver's batch would land twice (measured in the
    # spike). A refused commit raises CommitFailedException and the archiver resumes from the table instead.
    "commit.retry.num-retries": "0",
    "write.parquet.compression-codec": "zstd",
    # Old metadata.json files go after 100 commits (a commit a minute writes 1,440 a day otherwise).
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
}


def _schema(columns: tuple[str, ...], identifier: tuple[str, ...] = ()) -> Schema:
    fields = []
    for field_id, name in enumerate(columns, start=1):
        kind, required = _COLUMN_TYPES[name]
        fields.append(NestedField(field_id, name, kind, required=required))
    ids = [f.field_id for f in fields if f.name in identifier]
    return Schema(*fields, identifier_field_ids=ids)


# (icao24, time_position) is the key, as the tracker's primary key is: one row per aircraft and position time.
POSITIONS_SCHEMA = _schema((*COLUMNS, INGESTED_AT), identifier=("icao24", "time_position"))
POSITIONS_SPEC = PartitionSpec(PartitionField(source_id=POSITIONS_SCHEMA.find_field("time_position").field_id,
                                              field_id=1000, transform=DayTransform(), name="time_position_day"))
POSITIONS_SORT = SortOrder(*(SortField(source_id=POSITIONS_SCHEMA.find_field(name).field_id,
                                       transform=IdentityTransform(), direction=SortDirection.ASC,
                                       null_order=NullOrder.NULLS_LAST) for name in ("icao24", "time_position")))
SORT_KEYS = [("icao24", "ascending"), ("time_position", "ascending")]  # PyIceberg writes rows as given

REJECTS_SCHEMA = Schema(
    NestedField(1, "topic", StringType(), required=True),
    NestedField(2, "partition", IntegerType(), required=True),
    NestedField(3, "offset", LongType(), required=True),
    NestedField(4, "reason", StringType(), required=True),
    NestedField(5, "value", BinaryType(), required=False),
    NestedField(6, "rejected_at", TimestamptzType(), required=True),
)


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema the archiver builds its batches with (plain, not large, strings)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[f.field_type], nullable=not f.required) for f in schema.fields])


POSITIONS_ARROW = arrow_schema(POSITIONS_SCHEMA)
REJECTS_ARROW = arrow_schema(REJECTS_SCHEMA)


# ------------------------------------------------------------------ catalog and tables

def load_catalog(settings: LakeSettings) -> Catalog:
    """The catalog LAKE_CATALOG_TYPE names. sql (the default): PyIceberg's SQL catalog in the project's
    PostgreSQL (or LAKE_CATALOG_URI), which creates its two tables (iceberg_tables,
    iceberg_namespace_properties) on first use. rest / glue: the same code against S3 Tables or Glue on AWS."""
    if settings.catalog_type == "sql":
        return SqlCatalog(settings.catalog_name, **settings.catalog_properties())
    return pyiceberg_load_catalog(settings.catalog_name, **settings.catalog_properties())


def rejects_identifier(settings: LakeSettings) -> tuple[str, str]:
    return (settings.namespace, f"{settings.table}_rejects")


class LostTable(RuntimeError):
    """The catalog names a table whose current metadata file is gone from the warehouse."""


def _ensure(catalog: SqlCatalog, identifier: tuple[str, str], schema: Schema, replace_lost: bool = False,
            **kwargs) -> Table:
    # Look before creating, so that a role without the create permissions (on AWS, the archiver's) can run it.
    if not catalog.namespace_exists(identifier[0]):
        try:
            catalog.create_namespace(identifier[0])
        except NamespaceAlreadyExistsError:
            pass
    # Load first: create_table writes its first metadata file to the warehouse before the catalog refuses a
    # duplicate, so trying to create an existing table would leave an orphan file at every start.
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        try:
            table = catalog.create_table(identifier, schema=schema, properties=TABLE_PROPERTIES, **kwargs)
            logger.info("created Iceberg table %s.%s at %s", *identifier, table.location())
            return table
        except TableAlreadyExistsError:
            table = catalog.load_table(identifier)  # another process created it in between
    except FileNotFoundError as exc:
        # The catalog outlived the files (a local endpoint that keeps S3 in memory was restarted): the
        # table's rows are gone with them. Only a deploy tool replaces such a table, and says so.
        if not replace_lost:
            raise LostTable(f"the catalog has {'.'.join(identifier)} but its metadata file is gone ({exc}); "
                            "`python -m infra.lake.create` replaces it with an empty table") from exc
        logger.warning("table %s.%s: its metadata file is gone from the warehouse (%s); replaced by an empty table",
                       *identifier, exc)
        catalog.drop_table(identifier)
        return _ensure(catalog, identifier, schema, **kwargs)
    # A catalog that drops properties at create (S3 Tables' REST does), or a table made by another tool.
    missing = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
    if missing:
        with table.transaction() as tx:
            tx.set_properties(missing)
        table = catalog.load_table(identifier)
    return table


def ensure_table(catalog: SqlCatalog, settings: LakeSettings, replace_lost: bool = False) -> Table:
    """The positions table, created with its namespace if missing (idempotent). A table whose metadata
    file is gone raises LostTable, or is replaced by an empty one with ``replace_lost``."""
    return _ensure(catalog, settings.identifier, POSITIONS_SCHEMA, replace_lost, partition_spec=POSITIONS_SPEC,
                   sort_order=POSITIONS_SORT)


def ensure_rejects_table(catalog: SqlCatalog, settings: LakeSettings, replace_lost: bool = False) -> Table:
    """The archiver's rejects table beside the positions table (idempotent)."""
    return _ensure(catalog, rejects_identifier(settings), REJECTS_SCHEMA, replace_lost)


def positions_table(settings: LakeSettings, catalog: SqlCatalog | None = None) -> Table:
    """The positions table as the catalog has it now (NoSuchTableError when it was never created)."""
    return (catalog or load_catalog(settings)).load_table(settings.identifier)


# ------------------------------------------------------------------ the offsets each commit carries

def encode_offsets(topic: str, offsets: Mapping[int, int]) -> str:
    """{partition: next offset} of one topic -> the text stored under OFFSETS_PROPERTY."""
    return json.dumps({topic: {str(p): int(o) for p, o in sorted(offsets.items())}}, separators=(",", ":"))


def decode_offsets(text: str | None, topic: str | None = None) -> dict[int, int]:
    """The stored text -> {partition: next offset} of ``topic`` (of the only topic when None)."""
    if not text:
        return {}
    doc = json.loads(text)
    if topic is None:
        if len(doc) > 1:
            raise ValueError(f"offsets of several topics ({', '.join(doc)}): say which")
        topic = next(iter(doc), None)
    return {int(p): int(o) for p, o in doc.get(topic, {}).items()}


def merge_offsets(*maps: Mapping[int, int]) -> dict[int, int]:
    """Per partition, the furthest next offset of any map."""
    merged: dict[int, int] = {}
    for offsets in maps:
        for partition, offset in offsets.items():
            if offset > merged.get(partition, -1):
                merged[partition] = offset
    return merged


def committed_offsets(table: Table, topic: str | None = None) -> dict[int, int]:
    """{partition: next offset} the table holds: the newest snapshot whose summary carries OFFSETS_PROPERTY
    (walking back from the current one past e.g. compaction snapshots) merged with the table property the
    same commit set. {} for a table nothing was archived into."""
    from_property = decode_offsets(table.properties.get(OFFSETS_PROPERTY), topic)
    from_summary: dict[int, int] = {}
    current = table.current_snapshot()
    if current is not None:
        for snapshot in ancestors_of(current, table.metadata):
            text = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot.summary else None
            if text:
                from_summary = decode_offsets(text, topic)
                break
    return merge_offsets(from_summary, from_property)


def offsets_snapshot_properties(table: Table) -> dict[str, str]:
    """What a tool that rewrites the table (compaction) passes as snapshot_properties, so its snapshot
    carries the archiver's offsets forward."""
    text = table.properties.get(OFFSETS_PROPERTY)
    current = table.current_snapshot()
    if current is not None:
        for snapshot in ancestors_of(current, table.metadata):
            found = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot.summary else None
            if found:
                text = text or found
                break
    return {OFFSETS_PROPERTY: text} if text else {}
