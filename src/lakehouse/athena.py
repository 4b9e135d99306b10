"""Athena over the lake: publishing the tables where the local endpoint's Athena can read them, and running a
query through StartQueryExecution / GetQueryResults (`make lake-athena`).

The catalog of record is PyIceberg's SQL catalog in PostgreSQL, which Athena cannot see. MiniStack's Athena
reads only S3 Tables tables (`s3tablescatalog/<bucket>`), and its Iceberg REST catalog serves the
highest-numbered `v<N>.metadata.json` in a table's metadata folder, not the pointer it was given. So
``publish`` copies each table's committed metadata file into a folder that holds nothing but committed
versions, named by the version's `last-updated-ms` (it grows with every commit, a replaced table's too),
and points an S3 Tables table at it. The copy references the very manifests and data files the archiver
wrote: nothing else is copied. MiniStack keeps S3 Tables in memory, so a restart drops the published tables
until the next publish (the archiver's next commit, or `make lake-athena`, which publishes first).
On AWS none of this runs (LAKE_ATHENA_PUBLISH is off): Athena reads the S3 Tables or Glue table itself.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .settings import LakeSettings

logger = logging.getLogger(__name__)

PUBLISHED_FOLDER = "_athena"  # under the warehouse: <warehouse>/_athena/<namespace>/<table>/metadata/
_METADATA_SUFFIX = ".metadata.json"
# Athena's types that come back as numbers (GetQueryResults returns every value as text).
_INTEGER_TYPES = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT_TYPES = {"float", "real", "double", "decimal"}
# DuckDB's (MiniStack) and Trino's (AWS) words for a table or schema that is not there; a missing column
# ("Referenced column ... not found") or function ("Catalog Error: Scalar Function ...") is not one of them.
_MISSING_TABLE = re.compile(r"TABLE_NOT_FOUND|SCHEMA_NOT_FOUND|\b(table|schema)\b[^:]*\b(does not exist|not found)",
                            re.IGNORECASE)


class AthenaError(RuntimeError):
    """Athena or the publish step cannot be used as set up (endpoint, bucket); the message says why."""


class AthenaQueryError(RuntimeError):
    """Athena refused or failed the query: ``reason`` is Athena's StateChangeReason."""

    def __init__(self, state: str, reason: str, query_id: str = "") -> None:
        super().__init__(f"{state}: {reason}")
        self.state, self.reason, self.query_id = state, reason, query_id


# ------------------------------------------------------------------ MiniStack's HOME

def ministack_home(home: Path) -> Path:
    """A HOME for MiniStack whose ~/.duckdb/extensions/v<duckdb>/<platform> links to the pip packages'
    extension folder, so the `INSTALL iceberg` its Athena runs finds the files and downloads nothing.
    A link that still resolves to the extensions is kept without importing DuckDB (the import of
    lakehouse.duck costs seconds); without the extension packages MiniStack starts anyway, with a warning
    (its Athena then cannot read Iceberg tables)."""
    root = home / ".duckdb" / "extensions"
    for link in root.glob("v*/*"):
        if (link / "iceberg.duckdb_extension").is_file():
            return home
    from .duck import LakeQueryError, _platform, extension_directory  # noqa: PLC0415 - slow import, rarely needed
    import duckdb  # noqa: PLC0415
    try:
        source = extension_directory() / f"v{duckdb.__version__}" / _platform()
    except LakeQueryError as exc:
        logger.warning("MiniStack's Athena will not read Iceberg tables: %s", exc)
        home.mkdir(parents=True, exist_ok=True)
        return home
    link = root / f"v{duckdb.__version__}" / _platform()
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()  # a dangling link of an older DuckDB
    link.symlink_to(source, target_is_directory=True)
    return home


# ------------------------------------------------------------------ where a table is published (pure)

def split_s3(location: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b'); s3a:// too."""
    scheme, sep, rest = location.partition("://")
    if not sep or scheme not in ("s3", "s3a") or "/" not in rest:
        raise AthenaError(f"{location!r} is not an s3://bucket/key location (Athena reads the lake from S3 only)")
    bucket, key = rest.split("/", 1)
    return bucket, key


def published_folder(warehouse: str, namespace: str, table: str) -> str:
    """s3://... folder holding the published metadata files of one table."""
    return f"{warehouse.rstrip('/')}/{PUBLISHED_FOLDER}/{namespace}/{table}/metadata/"


def published_location(warehouse: str, namespace: str, table: str, version: int) -> str:
    return f"{published_folder(warehouse, namespace, table)}v{version}{_METADATA_SUFFIX}"


def version_of(location: str | None) -> int:
    """N of '.../vN.metadata.json'; -1 for anything else (S3 Tables' own v0 of an empty table is 0)."""
    name = (location or "").rsplit("/", 1)[-1]
    if name.startswith("v") and name.endswith(_METADATA_SUFFIX):
        digits = name[1:-len(_METADATA_SUFFIX)]
        if digits.isdigit():
            return int(digits)
    return -1


def table_bucket_arn(region: str, account: str, bucket: str) -> str:
    return f"arn:aws:s3tables:{region}:{account}:bucket/{bucket}"


# ------------------------------------------------------------------ publishing

@dataclass(frozen=True)
class Published:
    table: str
    location: str       # the published copy the S3 Tables table points at
    changed: bool       # False: it already pointed at this version (or a newer one)


class _Clients:
    """boto3 clients with short timeouts and one retry: publishing runs inside the archiver's commit loop,
    and an endpoint that is down must cost it seconds, not minutes."""

    def __init__(self, settings: LakeSettings) -> None:
        import boto3  # noqa: PLC0415 - only the publish and query paths need it
        from botocore.config import Config  # noqa: PLC0415
        config = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
        kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
        self.s3 = boto3.client("s3", **kwargs)
        self.s3tables = boto3.client("s3tables", **kwargs)
        self.athena = boto3.client("athena", **kwargs)
        self.region = settings.aws_region
        self._account: str | None = None

    def bucket_arn(self, bucket: str) -> str:
        if self._account is None:
            import boto3  # noqa: PLC0415
            try:
                self._account = boto3.client("sts", region_name=self.region).get_caller_identity()["Account"]
            except Exception:  # noqa: BLE001 - MiniStack's default account when STS cannot say
                self._account = "000000000000"
        return table_bucket_arn(self.region, self._account, bucket)


_CLIENTS: dict[tuple, _Clients] = {}


def clients(settings: LakeSettings) -> _Clients:
    """One set of clients per region and endpoint for the process (making them costs ~0.4 s of CPU, and
    the archiver publishes after every commit)."""
    key = (settings.aws_region, os.environ.get("AWS_ENDPOINT_URL"))
    if key not in _CLIENTS:
        _CLIENTS[key] = _Clients(settings)
    return _CLIENTS[key]


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _ensure_s3_table(c: _Clients, arn: str, namespace: str, name: str) -> None:
    """The table bucket, namespace and table, each created if missing (MiniStack forgets them on restart)."""
    for create in (lambda: c.s3tables.create_table_bucket(name=arn.rsplit("/", 1)[-1]),
                   lambda: c.s3tables.create_namespace(tableBucketARN=arn, namespace=[namespace]),
                   lambda: c.s3tables.create_table(tableBucketARN=arn, namespace=namespace, name=name,
                                                   format="ICEBERG")):
        try:
            create()
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError; anything else is raised
            if _error_code(exc) not in ("ConflictException", "BucketAlreadyExists", "AlreadyExistsException"):
                raise


def publish_table(settings: LakeSettings, table, c: _Clients | None = None) -> Published:
    """Publish one loaded PyIceberg table as it is now (its committed metadata file) to the S3 Tables
    table `<LAKE_ATHENA_TABLE_BUCKET>.<namespace>.<table name>`; older published copies are removed."""
    c = c or clients(settings)
    namespace, name = settings.namespace, table.name()[-1]
    version = int(table.metadata.last_updated_ms)
    target = published_location(settings.warehouse, namespace, name, version)
    arn = c.bucket_arn(settings.athena_table_bucket)
    try:
        current = c.s3tables.get_table_metadata_location(tableBucketARN=arn, namespace=namespace, name=name)
    except Exception as exc:  # noqa: BLE001
        if _error_code(exc) != "NotFoundException":
            raise
        _ensure_s3_table(c, arn, namespace, name)
        current = c.s3tables.get_table_metadata_location(tableBucketARN=arn, namespace=namespace, name=name)
    folder = published_folder(settings.warehouse, namespace, name)
    if current.get("metadataLocation", "").startswith(folder) and version_of(current["metadataLocation"]) >= version:
        return Published(name, current["metadataLocation"], changed=False)  # a later publish got there first
    source_bucket, source_key = split_s3(table.metadata_location)
    bucket, key = split_s3(target)
    c.s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key})
    c.s3tables.update_table_metadata_location(tableBucketARN=arn, namespace=namespace, name=name,
                                              versionToken=current["versionToken"], metadataLocation=target)
    _remove_older_copies(c, folder, version)
    return Published(name, target, changed=True)


def _remove_older_copies(c: _Clients, folder: str, version: int) -> None:
    """Only the newest copy is needed (a query in flight has loaded its metadata already)."""
    bucket, prefix = split_s3(folder)
    listing = c.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    old = [o["Key"] for o in listing.get("Contents", []) if version_of(o["Key"]) < version]
    if old:
        c.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in old], "Quiet": True})


def publish(settings: LakeSettings, catalog=None, tables: Iterable | None = None,
            c: _Clients | None = None) -> list[Published]:
    """Publish ``tables`` (loaded PyIceberg tables), or every table of the namespace, for Athena."""
    if not settings.warehouse_bucket:
        raise AthenaError(f"LAKE_WAREHOUSE={settings.warehouse!r} is not on S3: Athena cannot read it")
    started = time.monotonic()
    if tables is None:
        from .catalog import load_catalog  # noqa: PLC0415
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError  # noqa: PLC0415
        catalog = catalog or load_catalog(settings)
        try:
            identifiers = catalog.list_tables(settings.namespace)
        except NoSuchNamespaceError:
            identifiers = []
        loaded = []
        for identifier in identifiers:
            try:
                loaded.append(catalog.load_table(identifier))
            except (NoSuchTableError, OSError) as exc:  # dropped meanwhile, or its files are gone
                logger.warning("lake table %s not published for Athena: %s", ".".join(identifier), exc)
        tables = loaded
    c = c or clients(settings)
    done = [publish_table(settings, table, c) for table in tables]
    logger.debug("published for Athena", extra={"tables": [p.table for p in done if p.changed],
                                                  "seconds": round(time.monotonic() - started, 3)})
    return done


def publish_quietly(settings: LakeSettings, *tables) -> None:
    """The archiver's hook after a commit: publish when LAKE_ATHENA_PUBLISH says so; a failure is logged,
    never raised (the commit stands; the next commit or `make lake-athena` publishes again)."""
    if not settings.athena_publishing:
        return
    try:
        publish(settings, tables=[t for t in tables if t is not None])
    except Exception as exc:  # noqa: BLE001 - Athena's copy must never stop the archiver
        logger.warning("publishing the lake for Athena failed (%s: %s); `make lake-athena` publishes again",
                       type(exc).__name__, str(exc)[:300], extra={"namespace": settings.namespace})


def unpublish(settings: LakeSettings, names: Sequence[str], c: _Clients | None = None) -> None:
    """Remove the S3 Tables tables and published copies of ``names`` (and the namespace when it is empty)."""
    c = c or clients(settings)
    arn = c.bucket_arn(settings.athena_table_bucket)
    for name in names:
        try:
            c.s3tables.delete_table(tableBucketARN=arn, namespace=settings.namespace, name=name)
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) != "NotFoundException":
                raise
        _remove_older_copies(c, published_folder(settings.warehouse, settings.namespace, name), 2 ** 63)
    try:
        c.s3tables.delete_namespace(tableBucketARN=arn, namespace=settings.namespace)
    except Exception as exc:  # noqa: BLE001 - not empty (other tables) or gone already
        if _error_code(exc) not in ("NotFoundException", "ConflictException"):
            raise


# ------------------------------------------------------------------ queries

@dataclass(frozen=True)
class QueryResult:
    query_id: str
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]    # typed: int/float for Athena's numeric types, else text; None for NULL
    seconds: float


def typed_value(text: str | None, athena_type: str) -> Any:
    """One GetQueryResults value (always text, absent for NULL) as Python: numbers for numeric types,
    booleans for boolean, the text otherwise (timestamps stay text: their format is the engine's)."""
    if text is None:
        return None
    kind = athena_type.lower().split("(", 1)[0].strip()
    try:
        if kind in _INTEGER_TYPES:
            return int(text)
        if kind in _FLOAT_TYPES:
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def result_rows(pages: Iterable[dict], header: bool) -> tuple[list[str], list[str], list[list[Any]]]:
    """(columns, types, typed rows) from GetQueryResults pages. A SELECT's (DML's) first page starts with
    a row of column names, which ``header`` drops."""
    columns: list[str] = []
    types: list[str] = []
    rows: list[list[Any]] = []
    for number, page in enumerate(pages):
        result = page.get("ResultSet", {})
        if not columns:
            info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [col.get("Label") or col["Name"] for col in info]
            types = [col.get("Type", "varchar") for col in info]
        page_rows = result.get("Rows", [])
        if number == 0 and header and page_rows:
            page_rows = page_rows[1:]
        for row in page_rows:
            cells = [cell.get("VarCharValue") for cell in row.get("Data", [])]
            rows.append([typed_value(v, types[i] if i < len(types) else "varchar") for i, v in enumerate(cells)])
    return columns, types, rows


def missing_table(reason: str) -> bool:
    """Athena's reason says a table (or schema) does not exist: on MiniStack, a published table it
    forgot in a restart; publishing again heals it."""
    first = (reason.strip().splitlines() or [""])[0]
    return bool(_MISSING_TABLE.search(first))


def run_query(settings: LakeSettings, sql: str, c: _Clients | None = None, poll_s: float = 0.1) -> QueryResult:
    """StartQueryExecution in the lake's catalog (LAKE_ATHENA_CATALOG) and database (LAKE_NAMESPACE), wait
    for it (LAKE_ATHENA_TIMEOUT_S), GetQueryResults. AthenaQueryError with Athena's reason when it fails."""
    c = c or clients(settings)
    started = time.monotonic()
    request: dict[str, Any] = {"QueryString": sql, "WorkGroup": settings.athena_workgroup,
                               "QueryExecutionContext": {"Catalog": settings.athena_query_catalog,
                                                         "Database": settings.namespace}}
    if settings.athena_output_location:
        request["ResultConfiguration"] = {"OutputLocation": settings.athena_output_location}
    try:
        query_id = c.athena.start_query_execution(**request)["QueryExecutionId"]
    except Exception as exc:  # noqa: BLE001 - a malformed statement is refused at submission
        if _error_code(exc) == "InvalidRequestException":
            raise AthenaQueryError("REFUSED", str(exc)) from exc
        raise
    deadline = started + settings.athena_timeout_s
    while True:
        execution = c.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        state = execution["Status"]["State"]
        if state not in ("QUEUED", "RUNNING"):
            break
        if time.monotonic() > deadline:
            c.athena.stop_query_execution(QueryExecutionId=query_id)
            raise AthenaQueryError("TIMEOUT", f"no answer within {settings.athena_timeout_s:g} s "
                                              "(LAKE_ATHENA_TIMEOUT_S); the query was stopped", query_id)
        time.sleep(poll_s)
    if state != "SUCCEEDED":
        raise AthenaQueryError(state, execution["Status"].get("StateChangeReason", ""), query_id)
    pages = c.athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
    columns, types, rows = result_rows(pages, header=execution.get("StatementType") == "DML")
    return QueryResult(query_id, columns, types, rows, time.monotonic() - started)


def query(settings: LakeSettings, sql: str, publish_first: bool | None = None,
          c: _Clients | None = None) -> QueryResult:
    """``run_query`` on tables published just before (when LAKE_ATHENA_PUBLISH is on, or
    ``publish_first``), so the answer is the catalog's current snapshot; a query that still finds a table
    missing (a MiniStack restart in between) is published again and retried once."""
    c = c or clients(settings)
    publishing = settings.athena_publishing if publish_first is None else publish_first
    if publishing:
        publish(settings, c=c)
    try:
        return run_query(settings, sql, c)
    except AthenaQueryError as exc:
        if not (publishing and missing_table(exc.reason)):
            raise
        logger.info("Athena did not find a table (%s); publishing again and retrying", exc.reason[:200])
        publish(settings, c=c)
        return run_query(settings, sql, c)


def endpoint_note() -> str:
    """Where the queries go, for messages."""
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS"
