"""Spark on the lake: pyspark in local mode with the Iceberg runtime, reading (and maintaining) the very table
the archiver writes, through Iceberg's JDBC catalog on the project's PostgreSQL: the same `iceberg_tables`
rows PyIceberg's SqlCatalog keeps (docs/LAKE.md).

    python -m infra.lake.spark fetch          resolve the pinned jars (infra/lake/pom.xml) with Maven (cached)
    python -m infra.lake.spark sql "SQL"      run SQL in Spark (`positions` resolves: the lake's namespace is
                                              the session's current one) and print the rows

`spark_session()` is the one place the Spark configuration is built. On EMR, Glue or Databricks the same
keys are used; only the catalog's implementation and its S3 settings differ (`aws_catalog_conf`).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

from pipeline_common.settings import ConfigError, Settings, setting

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "infra" / "lake" / "pom.xml"
JAR_DIR = ROOT / ".cache" / "lake" / "jars"
JAR_STAMP = JAR_DIR / ".pom-sha256"
RUNTIME_JAR = "iceberg-spark-runtime-*.jar"
ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
SPARK_CATALOG = "org.apache.iceberg.spark.SparkCatalog"
S3_FILE_IO = "org.apache.iceberg.aws.s3.S3FileIO"


@dataclass(frozen=True)
class SparkSettings(Settings):
    ENV_PREFIX: ClassVar[str] = "LAKE_SPARK_"
    USED_BY: ClassVar[str] = "Spark on the lake (infra/lake/spark.py)"

    master: str = setting("LAKE_SPARK_MASTER", "local[2]",
                          help="Spark master for the local session (local[N]: N worker threads in one JVM)")
    driver_memory: str = setting("LAKE_SPARK_DRIVER_MEMORY", "1g",
                                 help="the local Spark driver's JVM heap (spark.driver.memory)")


# --------------------------------------------------------------------------- jars

def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def jars() -> list[Path]:
    """The resolved jars; a ConfigError naming the command when they are not there yet."""
    found = sorted(JAR_DIR.glob("*.jar"))
    if not any(p.match(RUNTIME_JAR) for p in found):
        raise ConfigError(f"the Iceberg Spark jars are not in {JAR_DIR.relative_to(ROOT)}; run `make setup` "
                          "(python -m infra.lake.spark fetch)")
    return found


def fetch_jars() -> list[Path]:
    """Resolve the pinned jars once with Maven, as the broker's are (infra/stack/servers.py); no network later."""
    from infra.stack.servers import _require_java, resolve_pom
    if JAR_STAMP.exists() and JAR_STAMP.read_text().strip() == _pom_digest() and any(JAR_DIR.glob(RUNTIME_JAR)):
        return sorted(JAR_DIR.glob("*.jar"))
    _require_java()
    found = resolve_pom(POM, JAR_DIR, "Iceberg Spark runtime, AWS bundle and PostgreSQL JDBC jars")
    JAR_STAMP.write_text(_pom_digest())
    return found


# --------------------------------------------------------------------------- configuration

def jdbc_connection(uri: str) -> tuple[str, str | None, str | None]:
    """PyIceberg's SQLAlchemy URL (postgresql+psycopg://user:pw@host:port/db) as JDBC:
    (jdbc:postgresql://host:port/db, user, password)."""
    from sqlalchemy.engine import make_url
    url = make_url(uri)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(f"LAKE_CATALOG_URI={url.render_as_string(hide_password=True)!r}: Spark's JDBC catalog "
                          "here speaks PostgreSQL only")
    if not url.host:
        raise ConfigError(f"LAKE_CATALOG_URI={url.render_as_string(hide_password=True)!r} has no host: JDBC "
                          "cannot use a Unix socket; give host:port")
    query = "&".join(f"{k}={v}" for k, v in url.query.items() if k in ("sslmode", "options"))
    jdbc = f"jdbc:postgresql://{url.host}:{url.port or 5432}/{url.database or ''}" + (f"?{query}" if query else "")
    return jdbc, url.username, url.password


def s3_conf(props: Mapping[str, str]) -> dict[str, str]:
    """Iceberg's S3FileIO keys from PyIceberg's FileIO properties: a local endpoint, path style, and
    the credentials when the catalog carries them (AWS's default chain otherwise)."""
    out = {"io-impl": S3_FILE_IO}
    if props.get("s3.endpoint"):
        out["s3.endpoint"] = props["s3.endpoint"]
        out["s3.path-style-access"] = "true"
    for key in ("s3.access-key-id", "s3.secret-access-key", "s3.session-token"):
        if props.get(key):
            out[key] = props[key]
    region = props.get("s3.region") or props.get("client.region")
    if region:
        out["client.region"] = region
    return out


def catalog_conf(name: str, props: Mapping[str, str], namespace: str) -> dict[str, str]:
    """`spark.sql.catalog.<name>.*` for the local JDBC catalog. The Spark catalog's name must be the
    SqlCatalog's name: it is the `catalog_name` column of `iceberg_tables`."""
    jdbc, user, password = jdbc_connection(props["uri"])
    conf = {"type": "jdbc", "uri": jdbc, "warehouse": props["warehouse"], "default-namespace": namespace,
            **({"jdbc.user": user} if user else {}), **({"jdbc.password": password} if password else {}),
            **s3_conf(props)}
    prefix = f"spark.sql.catalog.{name}"
    return {prefix: SPARK_CATALOG, **{f"{prefix}.{k}": v for k, v in conf.items()}}


def aws_catalog_conf(name: str, *, region: str, namespace: str, table_bucket_arn: str | None = None,
                     warehouse: str | None = None) -> dict[str, str]:
    """The same catalog on AWS (docs/LAKE.md): S3 Tables' Iceberg REST endpoint (SigV4) when a table
    bucket is given, else the Glue Data Catalog with data under `warehouse`. Credentials and the endpoint
    come from the cluster's role."""
    prefix = f"spark.sql.catalog.{name}"
    if table_bucket_arn:
        conf = {"type": "rest", "uri": f"https://s3tables.{region}.amazonaws.com/iceberg",
                "warehouse": table_bucket_arn, "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables",
                "rest.signing-region": region}
    elif warehouse:
        conf = {"type": "glue", "warehouse": warehouse}
    else:
        raise ValueError("give table_bucket_arn (S3 Tables) or warehouse (Glue)")
    conf.update({"io-impl": S3_FILE_IO, "client.region": region, "default-namespace": namespace})
    return {prefix: SPARK_CATALOG, **{f"{prefix}.{k}": v for k, v in conf.items()}}


def session_conf(catalog_name: str, props: Mapping[str, str], namespace: str, spark: SparkSettings,
                 jar_paths: list[Path]) -> dict[str, str]:
    """Every Spark setting of the local session: jars, Iceberg's SQL extensions (CALL procedures), the
    catalog as the default one, UTC."""
    conf = {
        "spark.master": spark.master,
        "spark.app.name": "flightpipe-lake",
        "spark.jars": ",".join(str(p) for p in jar_paths),
        "spark.driver.memory": spark.driver_memory,
        "spark.sql.extensions": ICEBERG_EXTENSIONS,
        "spark.sql.defaultCatalog": catalog_name,
        "spark.sql.session.timeZone": "UTC",
        **catalog_conf(catalog_name, props, namespace),
    }
    if spark.master.startswith("local"):
        # One machine: no web UI or progress bar, the driver on loopback (not the host's first interface), and
        # a few shuffle partitions instead of 200 tiny tasks.
        conf.update({"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                     "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                     "spark.sql.shuffle.partitions": "4"})
    return conf


def spark_session(settings=None, *, catalog=None, spark_settings: SparkSettings | None = None):
    """A SparkSession on the lake: `SELECT count(*) FROM positions` reads the archiver's table.
    The JVM starts here (tens of seconds on a loaded machine); call once per process."""
    from lakehouse.catalog import load_catalog
    from lakehouse.settings import LakeSettings
    from pyspark.sql import SparkSession

    settings = settings or LakeSettings.from_env()
    catalog = catalog or load_catalog(settings)
    spark_settings = spark_settings or SparkSettings.from_env()
    conf = session_conf(catalog.name, catalog.properties, settings.namespace, spark_settings, jars())
    region = conf.get(f"spark.sql.catalog.{catalog.name}.client.region")
    if region:
        os.environ.setdefault("AWS_REGION", region)  # the AWS SDK in the JVM wants one even with client.region
    if spark_settings.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # else a warning that the hostname is loopback
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    started = time.monotonic()
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    logger.info("spark session ready", extra={"seconds": round(time.monotonic() - started, 1),
                                              "catalog": catalog.name, "master": spark_settings.master})
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve the pinned jars with Maven into .cache/lake/jars")
    sql = sub.add_parser("sql", help="run SQL in a local Spark session on the lake")
    sql.add_argument("sql")
    SparkSettings.add_flags(sql.add_argument_group("settings"))
    args = parser.parse_args(argv)
    from infra.stack.servers import StackError
    try:
        if args.command == "fetch":
            found = fetch_jars()
            print(f"[lake] {len(found)} jars in {JAR_DIR.relative_to(ROOT)}")
            return 0
        from pyspark.errors import PySparkException
        session = spark_session(spark_settings=SparkSettings.from_args(args))
        try:
            frame = session.sql(args.sql)
            frame.show(n=100, truncate=False)
        except PySparkException as exc:
            print(f"lake-spark: {exc}", file=sys.stderr)
            return 2
        finally:
            session.stop()
    except (ConfigError, StackError) as exc:
        print(f"lake-spark: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
