"""The lake's settings (LAKE_*): where the Iceberg catalog and warehouse are, which table, and how the
archiver batches its commits. Read by the archiver and every lake tool (infra/lake/*)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.settings import ConfigError, Settings, setting
from pipeline_common.shared_settings import KAFKA_TOPIC
from tracker.settings import DATABASE_URL, POSTGRES_PORT, TrackerConfig, native_database_url

# SQLAlchemy's driver for psycopg 3, the PostgreSQL driver the project already ships (no psycopg2).
_SQLALCHEMY_DRIVER = "postgresql+psycopg://"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "0.0.0.0")


def sqlalchemy_url(database_url: str) -> str:
    """'postgresql://u@h:p/db' (libpq form, as DATABASE_URL is) -> 'postgresql+psycopg://u@h:p/db'."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return _SQLALCHEMY_DRIVER + database_url[len(scheme):]
    return database_url


@dataclass(frozen=True)
class LakeSettings(Settings):
    ENV_PREFIX: ClassVar[str] = "LAKE_"
    USED_BY: ClassVar[str] = "archiver, lake tools"

    catalog_type: str = setting(
        "LAKE_CATALOG_TYPE", "sql", choices=("sql", "rest", "glue"),
        help="which Iceberg catalog: `sql` (PyIceberg's SQL catalog; here, the project's PostgreSQL), `rest` (an "
             "Iceberg REST catalog: on AWS, S3 Tables, signed with SigV4) or `glue` (the AWS Glue Data Catalog)")
    catalog_uri: str | None = setting(
        "LAKE_CATALOG_URI", None, metavar="URL",
        doc_default="sql: the tracker's PostgreSQL (`DATABASE_URL`, else the native server) as "
                    "`postgresql+psycopg://...`; rest: `https://s3tables.<AWS_REGION>.amazonaws.com/iceberg`",
        help="the catalog's address: for sql a SQLAlchemy URL (`sqlite:///path` works for a file), for rest the "
             "REST endpoint; unused by glue")
    catalog_name: str = setting("LAKE_CATALOG_NAME", "lake",
                                help="the catalog's name (the `catalog_name` column; Spark's catalog must be "
                                     "named the same; not the namespace's name, which Spark's procedures confuse)")
    warehouse: str = setting("LAKE_WAREHOUSE", "s3://flightpipe-lake/warehouse",
                             help="where tables' data and metadata files go (s3://bucket/prefix or file:///dir)")
    namespace: str = setting("LAKE_NAMESPACE", "flightpipe", help="the Iceberg namespace of the lake's tables")
    table: str = setting("LAKE_TABLE", "positions", help="the table the archiver writes every position to")
    # A batch waits as Python objects (~0.8 KB a row) until its commit, and the process keeps the high-water
    # mark: at 1,000 positions/s, 60-s commits of ~60,000 rows took the archiver from 310 to 390 MB over a
    # 10-minute soak; 30,000 (a commit every 30 s at that rate, every 60 s below 500/s) halves the batch.
    commit_rows: int = setting("LAKE_COMMIT_ROWS", 30_000, minimum=1, maximum=10_000_000,
                               help="the archiver commits once this many records are buffered")
    commit_interval_s: float = setting("LAKE_COMMIT_INTERVAL_S", 60.0, minimum=0.1, maximum=3600, unit="s",
                                       help="the archiver commits what it has at least this often")
    group_id: str = setting("LAKE_GROUP_ID", "flight-archiver",
                            help="the archiver's consumer group (its committed offsets are only a hint for "
                                 "lag tools: the table's snapshots hold the real ones)")
    database_url: str | None = DATABASE_URL.field()
    postgres_port: int = POSTGRES_PORT.field()
    # The standard AWS variables (boto3 reads them too); declared here so the S3 file IO gets them.
    aws_endpoint_url: str | None = setting("AWS_ENDPOINT_URL", None, flag=None,
                                           doc_default="`http://localhost:4566` (from the Makefile; `AWS_PORT` "
                                                       "changes the port)",
                                           help="the AWS endpoint; unset for real AWS")
    aws_region: str = setting("AWS_REGION", "us-east-1", flag=None, fallback_env=("AWS_DEFAULT_REGION",),
                              help="region")
    # Athena (src/lakehouse/athena.py, `make lake-athena`). Locally MiniStack's Athena reads only S3 Tables
    # tables, so each committed version is published to one; on AWS Athena reads S3 Tables or Glue directly.
    athena_publish: bool | None = setting(
        "LAKE_ATHENA_PUBLISH", None,
        doc_default="on when `AWS_ENDPOINT_URL` is set (a local endpoint) and LAKE_CATALOG_TYPE is `sql`, else off",
        help="after each commit (archiver) and before each `make lake-athena` query, point an S3 Tables table "
             "of LAKE_ATHENA_TABLE_BUCKET at a copy of each table's committed metadata file")
    athena_table_bucket: str = setting("LAKE_ATHENA_TABLE_BUCKET", "flightpipe-lake",
                                       help="the S3 Tables bucket Athena reads the lake's tables from (its Athena "
                                            "catalog is `s3tablescatalog/<bucket>`)")
    athena_catalog: str | None = setting("LAKE_ATHENA_CATALOG", None,
                                         doc_default="`s3tablescatalog/<LAKE_ATHENA_TABLE_BUCKET>`",
                                         help="Athena's catalog for `make lake-athena` (`AwsDataCatalog` for a "
                                              "Glue table); the database is LAKE_NAMESPACE")
    athena_output: str | None = setting("LAKE_ATHENA_OUTPUT", None, metavar="S3_URL",
                                        doc_default="`s3://<warehouse bucket>/athena-results/`",
                                        help="where Athena writes query results")
    athena_workgroup: str = setting("LAKE_ATHENA_WORKGROUP", "primary", help="Athena's workgroup")
    s3_request_timeout_s: float = setting(
        "LAKE_S3_REQUEST_TIMEOUT_S", 60.0, minimum=1, maximum=3600, unit="s",
        help="how long one S3 request of the lake's files may go without progress (PyArrow's own default, 3 s, "
             "fails UploadPart and HeadObject on a loaded machine: measured, \"Operation too slow\")")
    s3_connect_timeout_s: float = setting("LAKE_S3_CONNECT_TIMEOUT_S", 30.0, minimum=1, maximum=600, unit="s",
                                          help="how long connecting to S3 for the lake's files may take")
    athena_timeout_s: float = setting("LAKE_ATHENA_TIMEOUT_S", 120.0, minimum=1, maximum=3600, unit="s",
                                      help="how long `make lake-athena` waits for a query to finish")

    def check(self) -> None:
        if self.catalog_type == "rest" and self.warehouse.startswith("arn:"):
            pass  # S3 Tables: the warehouse is the table bucket's ARN
        elif not self.warehouse.startswith(("s3://", "s3a://", "file://", "/")):
            raise ConfigError(f"LAKE_WAREHOUSE={self.warehouse!r} is not an s3:// or file:// location"
                              + (" (or, with LAKE_CATALOG_TYPE=rest, a table bucket ARN)"
                                 if self.catalog_type != "rest" else " or a table bucket ARN"))
        for name, value in (("LAKE_NAMESPACE", self.namespace), ("LAKE_TABLE", self.table)):
            if not value or "." in value:
                raise ConfigError(f"{name}={value!r} must be one non-empty name without dots")

    @property
    def catalog_url(self) -> str:
        """LAKE_CATALOG_URI, else the tracker's database (DATABASE_URL or the native server) for SQLAlchemy."""
        if self.catalog_uri:
            return self.catalog_uri
        return sqlalchemy_url(self.database_url or native_database_url(self.postgres_port))

    @property
    def athena_publishing(self) -> bool:
        """LAKE_ATHENA_PUBLISH, else on for the SQL catalog on a local endpoint (AWS_ENDPOINT_URL set); off on
        AWS and for an S3 Tables or Glue catalog, whose tables Athena reads as they are."""
        if self.athena_publish is not None:
            return self.athena_publish
        return bool(self.aws_endpoint_url) and self.catalog_type == "sql"

    @property
    def athena_query_catalog(self) -> str:
        return self.athena_catalog or f"s3tablescatalog/{self.athena_table_bucket}"

    @property
    def athena_output_location(self) -> str | None:
        """LAKE_ATHENA_OUTPUT, else athena-results/ in the warehouse's bucket (None: the workgroup's own)."""
        if self.athena_output:
            return self.athena_output if self.athena_output.endswith("/") else self.athena_output + "/"
        bucket = self.warehouse_bucket
        return f"s3://{bucket}/athena-results/" if bucket else None

    @property
    def maintained_by_s3_tables(self) -> bool:
        """An S3 Tables table: AWS compacts it, expires its snapshots and removes unreferenced files itself
        (and its bucket cannot be listed, which an orphan sweep needs), so make lake-maintain leaves it be."""
        return self.catalog_type == "rest" and self.warehouse.startswith("arn:aws:s3tables:")

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.namespace, self.table)

    @property
    def warehouse_bucket(self) -> str | None:
        """The S3 bucket of an s3:// warehouse (created by `python -m infra.lake.create`), else None."""
        if not self.warehouse.startswith(("s3://", "s3a://")):
            return None
        return self.warehouse.split("://", 1)[1].split("/", 1)[0]

    def file_io_properties(self) -> dict[str, str]:
        """PyIceberg's S3 properties. Credentials are left to the default AWS chain (AWS_ACCESS_KEY_ID...);
        a local endpoint (MiniStack) gets path-style addressing, since it serves no bucket subdomains."""
        props = {"s3.region": self.aws_region, "s3.request-timeout": f"{self.s3_request_timeout_s:g}",
                 "s3.connect-timeout": f"{self.s3_connect_timeout_s:g}"}
        if self.aws_endpoint_url:
            props["s3.endpoint"] = self.aws_endpoint_url
            host = self.aws_endpoint_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if host in _LOCAL_HOSTS or not self.aws_endpoint_url.startswith("https://"):
                props["s3.force-virtual-addressing"] = "false"
        return props

    def catalog_properties(self) -> dict[str, str]:
        """Everything PyIceberg's catalog of LAKE_CATALOG_TYPE needs (lakehouse.catalog.load_catalog).
        sql: pool_pre_ping, so that a pooled connection a PostgreSQL restart broke is replaced before use
        instead of failing the next commit. rest: S3 Tables' endpoint, every request signed with SigV4 for the
        `s3tables` service. glue: the region (and the local endpoint, when one is set)."""
        if self.catalog_type == "rest":
            return {"type": "rest", "warehouse": self.warehouse,
                    "uri": self.catalog_uri or f"https://s3tables.{self.aws_region}.amazonaws.com/iceberg",
                    "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables",
                    "rest.signing-region": self.aws_region, **self.file_io_properties()}
        if self.catalog_type == "glue":
            glue = {"glue.endpoint": self.aws_endpoint_url} if self.aws_endpoint_url else {}
            return {"type": "glue", "warehouse": self.warehouse, "glue.region": self.aws_region, **glue,
                    **self.file_io_properties()}
        return {"uri": self.catalog_url, "warehouse": self.warehouse, "pool_pre_ping": "true",
                **self.file_io_properties()}


# The tracker's retention, reused (not declared again): the quality checks compare with PostgreSQL only the
# days it still keeps.
_TRACKER_RETENTION_DAYS = dict(TrackerConfig.settings())["retention_days"]


@dataclass(frozen=True)
class QualitySettings(Settings):
    """The data-quality checks of one day (src/lakehouse/quality.py, `make lake-quality`): the lake, the
    tracker's PostgreSQL (the lake's DATABASE_URL), the topic both are fed from, and two bounds of their own."""
    ENV_PREFIX: ClassVar[str] = "QUALITY_"
    USED_BY: ClassVar[str] = "lake-quality"

    freshness_s: float = setting("QUALITY_FRESHNESS_S", 900.0, minimum=1, maximum=7 * 86_400, unit="s",
                                 help="the newest position of today in the lake and in PostgreSQL must be younger "
                                      "than this; a past day is settled this long after its midnight (then every "
                                      "position of it must be archived)")
    kafka_timeout_s: float = setting("QUALITY_KAFKA_TIMEOUT_S", 600.0, minimum=1, maximum=86_400, unit="s",
                                     help="how long the Kafka recount may take to read the day's records back")
    retention_days: int = _TRACKER_RETENTION_DAYS.field()
    topic: str = KAFKA_TOPIC.field()
    lake: LakeSettings = field(default_factory=LakeSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    @property
    def database(self) -> str:
        """The tracker's PostgreSQL as the tracker resolves it: DATABASE_URL, else the native server."""
        return self.lake.database_url or native_database_url(self.lake.postgres_port)
