"""DuckDB over the lake: one in-process connection with a view per Iceberg table of the lake's namespace
(``positions``, ``rejects``, ...), read through the catalog's current metadata file, so plain SQL works.

DuckDB downloads its extensions at run time by default; here they come from the pinned pip packages
(duckdb-ext-httpfs, -avro, -iceberg), loaded from their package folder, and nothing is ever downloaded.
"""
from __future__ import annotations

import importlib.util
import logging
import platform
import time
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import duckdb

from .catalog import load_catalog
from .settings import LakeSettings

logger = logging.getLogger(__name__)

# iceberg reads Avro manifests and S3 objects: load those first, from the same folder (iceberg would try to
# download avro otherwise: measured, docs/LAKE.md).
EXTENSIONS = ("httpfs", "avro", "iceberg")
EXTENSIONS_PACKAGE = "duckdb_ext"
S3_CREDENTIALS_NAME = "lake_s3"  # the DuckDB secret (CREATE SECRET) holding the lake's S3 settings


class LakeQueryError(RuntimeError):
    """The lake cannot be queried as set up (extensions missing, no credentials); the message says why."""


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = platform.system().lower()
    return f"{'osx' if system == 'darwin' else system}_{arch}"


def extension_directory() -> Path:
    """The pip packages' extension folder (it holds v<duckdb version>/<platform>/<name>.duckdb_extension,
    the layout DuckDB's own extension_directory has); a LakeQueryError when a needed extension is missing."""
    spec = importlib.util.find_spec(EXTENSIONS_PACKAGE)
    folders = list(spec.submodule_search_locations or ()) if spec else []
    version = duckdb.__version__
    for folder in folders:
        root = Path(folder) / "extensions"
        have = root / f"v{version}" / _platform()
        if all((have / f"{name}.duckdb_extension").is_file() for name in EXTENSIONS):
            return root
    missing = " ".join(f"duckdb-ext-{name}" for name in EXTENSIONS)
    raise LakeQueryError(f"the DuckDB extensions {', '.join(EXTENSIONS)} for duckdb {version} on {_platform()} are "
                         f"not installed ({missing}, pinned in pyproject.toml); run `make setup`")


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def s3_secret_sql(endpoint: str | None, region: str, key_id: str | None = None, secret: str | None = None,
                  session_token: str | None = None, name: str = S3_CREDENTIALS_NAME) -> str:
    """The CREATE SECRET statement for the lake's S3: a local endpoint (AWS_ENDPOINT_URL, e.g.
    http://localhost:4566) is reached path-style, over TLS only when its URL says https; no endpoint
    means AWS itself (virtual-hosted style, TLS)."""
    options = ["TYPE S3", f"REGION {_quote(region)}"]
    if key_id and secret:
        options += [f"KEY_ID {_quote(key_id)}", f"SECRET {_quote(secret)}"]
        if session_token:
            options.append(f"SESSION_TOKEN {_quote(session_token)}")
    if endpoint:
        url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise LakeQueryError(f"S3 endpoint {endpoint!r} is not an http(s)://host[:port] URL")
        host = url.netloc.rsplit("@", 1)[-1]
        options += [f"ENDPOINT {_quote(host)}", "URL_STYLE 'path'",
                    f"USE_SSL {'true' if url.scheme == 'https' else 'false'}"]
    return f"CREATE OR REPLACE SECRET {name} ({', '.join(options)})"


def s3_secret_from_properties(props: Mapping[str, str]) -> str:
    """The secret from the same FileIO properties PyIceberg writes with (s3.endpoint, s3.region,
    s3.access-key-id, ...), so DuckDB reads exactly where the archiver wrote; without keys there, the
    standard AWS chain (environment, profile, instance role) through botocore."""
    key_id, secret = props.get("s3.access-key-id"), props.get("s3.secret-access-key")
    token = props.get("s3.session-token")
    region = props.get("s3.region") or props.get("client.region")
    if not (key_id and secret and region):
        import boto3  # LakeSettings leaves credentials to the AWS chain, as PyIceberg's own S3 client does
        session = boto3.Session()
        region = region or session.region_name or "us-east-1"
        creds = session.get_credentials() if not (key_id and secret) else None
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            key_id, secret, token = frozen.access_key, frozen.secret_key, frozen.token
    return s3_secret_sql(props.get("s3.endpoint"), region, key_id, secret, token)


def view_sql(name: str, metadata_location: str) -> str:
    """A view over one Iceberg table as of one metadata file: always the file the catalog names (a table
    folder alone makes DuckDB guess the version, which may be a file no commit ever made current)."""
    return f"CREATE OR REPLACE VIEW {_ident(name)} AS SELECT * FROM iceberg_scan({_quote(metadata_location)})"


def open_connection(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with httpfs, avro and iceberg loaded from the pip packages; never downloads."""
    ext_dir = extension_directory()
    con = duckdb.connect(database, config={"extension_directory": str(ext_dir),
                                           "autoinstall_known_extensions": False})
    for name in EXTENSIONS:
        con.execute(f"LOAD {name}")
    # Timestamps print in UTC whatever the machine's zone is, as the tracker and the archiver store them.
    con.execute("SET TimeZone = 'UTC'")
    return con


def table_locations(catalog, namespace: str) -> dict[str, str]:
    """{table name: current metadata location} of every table in the namespace (none: {})."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
    try:
        identifiers = catalog.list_tables(namespace)
    except NoSuchNamespaceError:
        return {}
    out = {}
    for identifier in identifiers:
        try:
            out[identifier[-1]] = catalog.load_table(identifier).metadata_location
        except NoSuchTableError:
            continue  # dropped between the listing and the load
        except OSError as exc:
            # Its metadata file is gone (an endpoint that kept S3 in memory was restarted): the other tables
            # still answer; `python -m infra.lake.create` replaces a lost positions table.
            logger.warning("lake table %s is not readable, no view for it: %s", ".".join(identifier), exc)
    return out


def view_locations(locations: Mapping[str, str], table: str) -> dict[str, str]:
    """{view name: metadata location}: one view per table, named as the table, and `rejects` for the
    archiver's rejects table of LAKE_TABLE (`<table>_rejects`) when it exists."""
    views = dict(locations)
    rejects = locations.get(f"{table}_rejects")
    if rejects and "rejects" not in views:
        views["rejects"] = rejects
    return views


def connect(settings: LakeSettings | None = None, *, catalog=None,
            database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """DuckDB with a view per table of the lake's namespace (LAKE_NAMESPACE), as of the catalog's current
    snapshot at this call: `SELECT count(*) FROM positions` resolves. A table committed to later is seen
    by a new connection (or ``refresh_views``)."""
    settings = settings or LakeSettings.from_env()
    catalog = catalog or load_catalog(settings)
    started = time.monotonic()
    con = open_connection(database)
    con.execute(s3_secret_from_properties(catalog.properties))
    views = refresh_views(con, catalog, settings)
    logger.debug("duckdb lake connection ready", extra={"views": sorted(views),
                                                        "seconds": round(time.monotonic() - started, 3)})
    return con


def refresh_views(con: duckdb.DuckDBPyConnection, catalog, settings: LakeSettings) -> dict[str, str]:
    """(Re)point each table's view at the table's current metadata file; returns {view: metadata location}."""
    views = view_locations(table_locations(catalog, settings.namespace), settings.table)
    for name, location in views.items():
        con.execute(view_sql(name, location))
    return views
