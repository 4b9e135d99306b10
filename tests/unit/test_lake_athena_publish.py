"""The pure parts of Athena over the lake (src/lakehouse/athena.py): where a table is published, which
published version wins, GetQueryResults pages to rows, the settings' defaults, MiniStack's HOME.
The real endpoint is tests/integration/test_lake_athena.py."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from infra.lake import athena as athena_cli
from lakehouse import athena
from lakehouse.settings import LakeSettings

WAREHOUSE = "s3://flightpipe-lake/warehouse"
VERSION = "v-2"   # S3 Tables' version token of the table (optimistic concurrency)


def test_published_location_is_one_folder_per_table_named_by_version():
    assert athena.published_location(WAREHOUSE + "/", "flightpipe", "positions", 1765000000123) == (
        "s3://flightpipe-lake/warehouse/_athena/flightpipe/positions/metadata/v1765000000123.metadata.json")
    assert athena.published_folder(WAREHOUSE, "ns", "t") == "s3://flightpipe-lake/warehouse/_athena/ns/t/metadata/"


@pytest.mark.parametrize("location, version", [
    ("s3://b/w/_athena/ns/t/metadata/v1765000000123.metadata.json", 1765000000123),
    ("s3://b/ns/t/metadata/v0.metadata.json", 0),  # S3 Tables' own empty table
    ("s3://b/w/ns.db/t/metadata/00003-1b2c.metadata.json", -1),  # the SQL catalog's names
    ("s3://b/w/x/vX.metadata.json", -1),
    ("", -1),
    (None, -1),
])
def test_version_of(location, version):
    assert athena.version_of(location) == version


def test_split_s3_refuses_a_file_warehouse():
    assert athena.split_s3("s3a://bucket/a/b.json") == ("bucket", "a/b.json")
    with pytest.raises(athena.AthenaError, match="not an s3://bucket/key"):
        athena.split_s3("file:///tmp/warehouse/x.metadata.json")


@pytest.mark.parametrize("text, kind, value", [
    ("201234", "bigint", 201234),
    ("-3", "integer", -3),
    ("2.5", "double", 2.5),
    ("10972.79", "float", 10972.79),
    ("12.50", "decimal(10,2)", 12.5),
    ("true", "boolean", True),
    ("2026-12-06 00:00:02+00:00", "timestamp with time zone", "2026-12-06 00:00:02+00:00"),
    ("Switzerland", "varchar", "Switzerland"),
    (None, "bigint", None),  # NULL: a Datum without VarCharValue
    ("NaN?", "bigint", "NaN?"),  # never raise on a value the engine printed its own way
])
def test_typed_value(text, kind, value):
    assert athena.typed_value(text, kind) == value


def _page(rows, columns=(("country", "varchar"), ("n", "bigint"))):
    return {"ResultSet": {"Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                          "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Label": n, "Type": t} for n, t in columns]}}}


def test_result_rows_drops_the_header_row_of_a_select_only_on_the_first_page():
    pages = [_page([["country", "n"], ["Switzerland", "3"], [None, "1"]]), _page([["Germany", "2"]])]
    columns, types, rows = athena.result_rows(pages, header=True)
    assert columns == ["country", "n"] and types == ["varchar", "bigint"]
    assert rows == [["Switzerland", 3], [None, 1], ["Germany", 2]]


def test_result_rows_keeps_every_row_without_a_header():
    _, _, rows = athena.result_rows([_page([["country", "n"]])], header=False)
    assert rows == [["country", "n"]]  # "n" is no bigint: kept as the text it is


@pytest.mark.parametrize("reason, missing", [
    ('Catalog Error: Table with name positions does not exist!', True),
    ("TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.flightpipe.positions' does not exist", True),
    ("Table positions not found", True),
    ('Binder Error: Referenced column "nope" not found in FROM clause!\nCandidate bindings: "source"', False),
    ("Catalog Error: Schema with name test_1 does not exist!", True),
    ("Catalog Error: Scalar Function with name approx_distinct does not exist!", False),
    ("Parser Error: syntax error at or near \"SELEC\"", False),
])
def test_missing_table(reason, missing):
    assert athena.missing_table(reason) is missing


def test_publishing_defaults_to_on_for_a_local_endpoint_only():
    assert LakeSettings.from_env({"AWS_ENDPOINT_URL": "http://localhost:4566"}).athena_publishing is True
    assert LakeSettings.from_env({}).athena_publishing is False  # AWS: Athena reads S3 Tables or Glue itself
    assert LakeSettings.from_env({"AWS_ENDPOINT_URL": "http://localhost:4566",
                                  "LAKE_ATHENA_PUBLISH": "false"}).athena_publishing is False
    assert LakeSettings.from_env({"LAKE_ATHENA_PUBLISH": "yes"}).athena_publishing is True
    # An S3 Tables (REST) or Glue catalog: Athena reads its tables as they are, nothing to publish.
    assert LakeSettings.from_env({"AWS_ENDPOINT_URL": "http://localhost:4566", "LAKE_CATALOG_TYPE": "glue"}
                                 ).athena_publishing is False


def test_query_catalog_and_output_defaults():
    s = LakeSettings.from_env({"LAKE_ATHENA_TABLE_BUCKET": "lake-bucket"})
    assert s.athena_query_catalog == "s3tablescatalog/lake-bucket"
    assert s.athena_output_location == "s3://flightpipe-lake/athena-results/"
    s = LakeSettings.from_env({"LAKE_ATHENA_CATALOG": "AwsDataCatalog", "LAKE_ATHENA_OUTPUT": "s3://results/x"})
    assert (s.athena_query_catalog, s.athena_output_location) == ("AwsDataCatalog", "s3://results/x/")
    assert LakeSettings.from_env({"LAKE_WAREHOUSE": "file:///tmp/wh"}).athena_output_location is None


class _ClientError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class _FakeS3Tables:
    """MiniStack's S3 Tables control plane, as far as publish_table uses it."""

    def __init__(self, location=None):
        self.location, self.calls = location, []

    def get_table_metadata_location(self, **kw):
        self.calls.append("get")
        if self.location is None:
            raise _ClientError("NotFoundException")
        return {"metadataLocation": self.location, "versionToken": VERSION}

    def create_table_bucket(self, **kw):
        self.calls.append("create_bucket")
        raise _ClientError("ConflictException")  # exists already

    def create_namespace(self, **kw):
        self.calls.append("create_namespace")

    def create_table(self, **kw):
        self.calls.append("create_table")
        self.location = "s3://flightpipe-lake/flightpipe/positions/metadata/v0.metadata.json"

    def update_table_metadata_location(self, **kw):
        self.calls.append("update")
        assert kw["versionToken"] == VERSION
        self.location = kw["metadataLocation"]


class _FakeS3:
    def __init__(self):
        self.copies, self.deleted, self.keys = [], [], []

    def copy_object(self, Bucket, Key, CopySource):
        self.copies.append((CopySource["Key"], Key))
        self.keys.append(Key)

    def list_objects_v2(self, Bucket, Prefix):
        return {"Contents": [{"Key": k} for k in self.keys if k.startswith(Prefix)]}

    def delete_objects(self, Bucket, Delete):
        gone = {o["Key"] for o in Delete["Objects"]}
        self.deleted += sorted(gone)
        self.keys = [k for k in self.keys if k not in gone]


def _fakes(location=None):
    c = SimpleNamespace(s3=_FakeS3(), s3tables=_FakeS3Tables(location),
                        bucket_arn=lambda b: f"arn:aws:s3tables:us-east-1:000000000000:bucket/{b}")
    return c


def _table(ms, name="positions"):
    return SimpleNamespace(name=lambda: ("flightpipe", name), metadata=SimpleNamespace(last_updated_ms=ms),
                           metadata_location=f"s3://flightpipe-lake/warehouse/flightpipe.db/{name}/metadata/0000{ms % 7}-u.metadata.json")


SETTINGS = LakeSettings.from_env({})


def test_publish_creates_the_missing_s3_table_then_points_it_at_a_copy():
    c = _fakes()
    done = athena.publish_table(SETTINGS, _table(1000), c)
    assert c.s3tables.calls == ["get", "create_bucket", "create_namespace", "create_table", "get", "update"]
    assert done == athena.Published("positions", athena.published_location(WAREHOUSE, "flightpipe", "positions", 1000),
                                    changed=True)
    assert c.s3.copies == [("warehouse/flightpipe.db/positions/metadata/00006-u.metadata.json",
                            "warehouse/_athena/flightpipe/positions/metadata/v1000.metadata.json")]


def test_a_newer_commit_replaces_the_copy_and_an_older_one_changes_nothing():
    c = _fakes()
    athena.publish_table(SETTINGS, _table(1000), c)
    newer = athena.publish_table(SETTINGS, _table(2000), c)
    assert newer.changed and c.s3tables.location.endswith("/v2000.metadata.json")
    assert c.s3.keys == ["warehouse/_athena/flightpipe/positions/metadata/v2000.metadata.json"]  # v1000 removed
    late = athena.publish_table(SETTINGS, _table(1500), c)  # a slower publisher of an older version
    assert not late.changed and c.s3tables.location.endswith("/v2000.metadata.json")
    assert len(c.s3.copies) == 2


def test_publish_quietly_never_raises(caplog):
    s = LakeSettings.from_env({"LAKE_ATHENA_PUBLISH": "true", "LAKE_WAREHOUSE": "file:///tmp/wh"})
    athena.publish_quietly(s, _table(1))
    assert "publishing the lake for Athena failed" in caplog.text
    caplog.clear()
    athena.publish_quietly(LakeSettings.from_env({}), _table(1))  # off: nothing tried
    assert caplog.text == ""


def test_ministack_home_links_the_pip_extensions(tmp_path):
    home = athena.ministack_home(tmp_path / "home")
    links = list((home / ".duckdb" / "extensions").glob("v*/*"))
    assert len(links) == 1 and links[0].is_symlink()
    assert {"iceberg.duckdb_extension", "avro.duckdb_extension", "httpfs.duckdb_extension"} <= {
        p.name for p in links[0].iterdir()}
    assert athena.ministack_home(home) == home and list((home / ".duckdb" / "extensions").glob("v*/*")) == links


def test_ministack_home_replaces_a_dangling_link(tmp_path):
    stale = tmp_path / "home" / ".duckdb" / "extensions" / "v1.4.4" / "linux_amd64"
    stale.parent.mkdir(parents=True)
    stale.symlink_to(tmp_path / "gone")
    athena.ministack_home(tmp_path / "home")
    links = list((tmp_path / "home" / ".duckdb" / "extensions").glob("v*/*"))
    assert all((link / "iceberg.duckdb_extension").is_file() for link in links)


def test_cli_without_sql_exits_2(capsys):
    assert athena_cli.main([""]) == 2
    assert "no SQL given" in capsys.readouterr().err
