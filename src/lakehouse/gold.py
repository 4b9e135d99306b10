"""Silver and gold tables of one UTC day, computed with DuckDB from the lake's positions table and written
back as Iceberg tables of the same namespace (`python -m infra.lake.gold --day YYYY-MM-DD`).

The SQL is src/lakehouse/gold.sql (its header defines every measure). A run replaces that day's partition
of each table and nothing else, so a rerun gives the same tables. Each table is its own commit (Iceberg
has no multi-table transaction): a run that stops half-way leaves some tables at the old day's values,
which the next run replaces.
"""
from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (BooleanType, DateType, DoubleType, FloatType, IcebergType, IntegerType, LongType,
                             NestedField, StringType, TimestamptzType)

from .catalog import TABLE_PROPERTIES

logger = logging.getLogger(__name__)

SQL_FILE = Path(__file__).with_name("gold.sql")
SILVER = "positions_clean"
# The views gold.sql reads: the raw rows of the day (made here), and the silver rows just computed.
DAY_POSITIONS = "day_positions"
DAY_CLEAN = "day_clean"
# Rows per Arrow batch when the silver day streams from DuckDB into Parquet (bounded memory at any day size).
BATCH_ROWS = 500_000

_TS = pa.timestamp("us", tz="UTC")
# The tables' columns, fixed here rather than left to what DuckDB infers, so a table keeps its schema run after
# run. Every column is optional: the values come out of SQL, and NOT NULL is the source table's promise.
SCHEMAS: dict[str, pa.Schema] = {
    SILVER: pa.schema([
        ("icao24", pa.string()), ("time_position", _TS), ("callsign", pa.string()), ("origin_country", pa.string()),
        ("longitude", pa.float64()), ("latitude", pa.float64()), ("baro_altitude", pa.float32()),
        ("geo_altitude", pa.float32()), ("on_ground", pa.bool_()), ("velocity", pa.float32()),
        ("true_track", pa.float32()), ("vertical_rate", pa.float32()), ("category", pa.int32()),
        ("source", pa.string())]),
    "gold_daily_country": pa.schema([("day", pa.date32()), ("country", pa.string()), ("aircraft", pa.int64()),
                                     ("positions", pa.int64()), ("flight_hours", pa.float64())]),
    "gold_daily_airline": pa.schema([("day", pa.date32()), ("airline", pa.string()), ("aircraft", pa.int64()),
                                     ("positions", pa.int64()), ("flight_hours", pa.float64())]),
    "gold_daily_category": pa.schema([("day", pa.date32()), ("category", pa.int32()), ("category_name", pa.string()),
                                      ("aircraft", pa.int64()), ("positions", pa.int64()),
                                      ("flight_hours", pa.float64())]),
    "gold_hourly": pa.schema([("day", pa.date32()), ("hour", _TS), ("aircraft", pa.int64()), ("positions", pa.int64()),
                              ("flight_hours", pa.float64()), ("busiest_rank", pa.int64())]),
    "gold_top_categories_per_country": pa.schema([
        ("day", pa.date32()), ("country", pa.string()), ("category_rank", pa.int64()), ("category", pa.int32()),
        ("category_name", pa.string()), ("aircraft", pa.int64()), ("positions", pa.int64())]),
}
GOLD_TABLES = tuple(name for name in SCHEMAS if name != SILVER)

_ICEBERG_TYPES: dict[pa.DataType, IcebergType] = {
    pa.string(): StringType(), _TS: TimestamptzType(), pa.float64(): DoubleType(), pa.float32(): FloatType(),
    pa.bool_(): BooleanType(), pa.int32(): IntegerType(), pa.int64(): LongType(), pa.date32(): DateType()}


@dataclass(frozen=True)
class Statement:
    kind: str   # "view" or "table"
    name: str
    sql: str


_HEADER = re.compile(r"^-- (view|table): (\w+)\s*$", re.MULTILINE)


def load_statements(text: str | None = None) -> list[Statement]:
    """gold.sql split at its `-- view: name` / `-- table: name` headers, in file order."""
    text = SQL_FILE.read_text() if text is None else text
    headers = list(_HEADER.finditer(text))
    out = []
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        sql = text[match.end():end].strip().rstrip(";").strip()
        out.append(Statement(match.group(1), match.group(2), sql))
    return out


def parse_day(text: str) -> date:
    """'2026-12-06' -> date; ValueError naming the expected form otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"day {text!r} is not a date like 2026-12-06") from None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[midnight UTC, next midnight UTC) of ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ------------------------------------------------------------------ computing (DuckDB only)

@dataclass
class DayResult:
    """The day's silver rows (left in DuckDB as the temporary table day_clean: they stream out in batches)
    and the gold tables (small: one row per group)."""
    day: date
    silver_rows: int
    gold: dict[str, pa.Table] = field(default_factory=dict)

    def silver_batches(self, con: duckdb.DuckDBPyConnection, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        reader = con.execute(f"SELECT * FROM {DAY_CLEAN} ORDER BY icao24, time_position").fetch_record_batch(batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield pa.Table.from_batches([batch]).cast(SCHEMAS[SILVER])


def compute_day(con: duckdb.DuckDBPyConnection, day: date, source: str = "positions",
                statements: list[Statement] | None = None) -> DayResult:
    """Silver and gold of ``day`` from the relation ``source`` (the lake's positions view, or any relation with
    the positions table's columns). The silver rows stay in DuckDB (temporary table day_clean), which spills
    to disk rather than holding a whole day in Python memory."""
    con.execute("SET TimeZone = 'UTC'")  # date_trunc and CAST(... AS DATE) of a timestamptz follow it
    start, end = day_bounds(day)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DAY_POSITIONS} AS SELECT * FROM {source} "
                f"WHERE time_position >= TIMESTAMPTZ {_quote(start.isoformat())} "
                f"AND time_position < TIMESTAMPTZ {_quote(end.isoformat())}")
    statements = load_statements() if statements is None else statements
    result = DayResult(day, 0)
    for statement in statements:
        if statement.name == SILVER:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {DAY_CLEAN} AS {statement.sql}")
            result.silver_rows = con.execute(f"SELECT count(*) FROM {DAY_CLEAN}").fetchone()[0]
        elif statement.kind == "view":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {statement.name} AS {statement.sql}")
        else:
            result.gold[statement.name] = con.execute(statement.sql).fetch_arrow_table().cast(SCHEMAS[statement.name])
    return result


# ------------------------------------------------------------------ writing back (PyIceberg)

def iceberg_schema(schema: pa.Schema) -> Schema:
    return Schema(*(NestedField(i, f.name, _ICEBERG_TYPES[f.type], required=False)
                    for i, f in enumerate(schema, start=1)))


def partition_spec(name: str, schema: Schema) -> PartitionSpec:
    """Silver by day of time_position (as positions is); gold by its day column."""
    if name == SILVER:
        source, transform, part = "time_position", DayTransform(), "time_position_day"
    else:
        source, transform, part = "day", IdentityTransform(), "day"
    return PartitionSpec(PartitionField(source_id=schema.find_field(source).field_id, field_id=1000,
                                        transform=transform, name=part))


def ensure_output_table(catalog, namespace: str, name: str) -> Table:
    """The table ``name`` of the namespace, created (idempotently) with the schema of SCHEMAS[name]."""
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        pass
    schema = iceberg_schema(SCHEMAS[name])
    try:
        table = catalog.create_table((namespace, name), schema=schema, partition_spec=partition_spec(name, schema),
                                     properties=TABLE_PROPERTIES)
        logger.info("created Iceberg table %s.%s", namespace, name)
        return table
    except TableAlreadyExistsError:  # another run created it meanwhile
        return catalog.load_table((namespace, name))


def day_filter(name: str, day: date) -> BooleanExpression:
    """The rows of ``day`` in table ``name``: whole partitions, so the overwrite drops files, never rewrites."""
    if name == SILVER:
        start, end = day_bounds(day)
        return And(GreaterThanOrEqual("time_position", start.isoformat()), LessThan("time_position", end.isoformat()))
    return EqualTo("day", day.isoformat())


def replace_day(table: Table, name: str, day: date, batches, properties: dict[str, str]) -> int:
    """One commit: the day's old files out, ``batches`` (Arrow tables) in. Returns the rows written. Files go
    to S3 batch by batch (memory stays at one batch); a refused commit removes them again."""
    # PyIceberg's own checks and writer, as Table.append uses them (append takes one Arrow table; this streams).
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    written, rows = [], 0
    counter = itertools.count()  # file names are <write uuid>-<n>: one counter for every batch, or they collide
    try:
        with table.transaction() as tx:
            with warnings.catch_warnings():  # a first run has nothing to delete, and PyIceberg warns about it
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                tx.delete(day_filter(name, day), snapshot_properties=properties)
            with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
                for batch in batches:
                    _check_pyarrow_schema_compatible(tx.table_metadata.schema(), provided_schema=batch.schema,
                                                     format_version=tx.table_metadata.format_version)
                    rows += batch.num_rows
                    for data_file in _dataframe_to_data_files(table_metadata=tx.table_metadata, df=batch,
                                                              io=table.io, write_uuid=append.commit_uuid,
                                                              counter=counter):
                        written.append(data_file)
                        append.append_data_file(data_file)
    except Exception:
        for data_file in written:
            try:
                table.io.delete(data_file.file_path)
            except OSError:  # the orphan sweep of `make lake-maintain` gets it later
                logger.warning("could not remove %s after a failed commit", data_file.file_path)
        raise
    return rows


@dataclass(frozen=True)
class TableWrite:
    table: str
    rows: int
    snapshot_id: int | None


def write_day(catalog, namespace: str, con: duckdb.DuckDBPyConnection, result: DayResult,
              batch_rows: int = BATCH_ROWS) -> list[TableWrite]:
    """Replace ``result.day`` in the silver table and each gold table."""
    props = {"flightpipe.job": "gold", "flightpipe.day": result.day.isoformat(), "flightpipe.run": uuid.uuid4().hex}
    out = []
    sources = {SILVER: lambda: result.silver_batches(con, batch_rows)}
    sources.update({name: (lambda t=t: iter([t]) if t.num_rows else iter(())) for name, t in result.gold.items()})
    for name, batches in sources.items():
        table = ensure_output_table(catalog, namespace, name)
        rows = replace_day(table, name, result.day, batches(), props)
        snapshot = table.current_snapshot()
        out.append(TableWrite(name, rows, snapshot.snapshot_id if snapshot else None))
        logger.info("wrote %s rows of %s to %s.%s", rows, result.day, namespace, name)
    return out


def build_day(settings, day: date, *, catalog=None, con: duckdb.DuckDBPyConnection | None = None) -> list[TableWrite]:
    """The whole job: read the lake's positions of ``day`` with DuckDB, write silver and gold back."""
    from .catalog import load_catalog
    from .duck import connect

    catalog = catalog or load_catalog(settings)
    started = time.monotonic()
    con = con or connect(settings, catalog=catalog)
    result = compute_day(con, day, source=settings.table)
    writes = write_day(catalog, settings.namespace, con, result)
    logger.info("gold day built", extra={"day": day.isoformat(), "silver_rows": result.silver_rows,
                                         "seconds": round(time.monotonic() - started, 2)})
    return writes
