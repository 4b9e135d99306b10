"""DuckDB over the lake (src/lakehouse/duck.py): the extensions come from the pip packages, the S3 secret
follows the endpoint, and every table of the namespace is a view as of the catalog's current snapshot.

The end-to-end cases use a file-backed catalog (SQLite) and a file:// warehouse: PyIceberg writes, DuckDB
reads, no server involved (tests/integration/test_lake_queries.py does the same on PostgreSQL and S3)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import duck
from lakehouse.catalog import POSITIONS_ARROW, ensure_rejects_table, ensure_table, load_catalog
from lakehouse.settings import LakeSettings

T0 = datetime(2026, 12, 6, 23, 59, 50, tzinfo=timezone.utc)  # rows cross UTC midnight: two partitions


def positions(n: int, start_offset: int = 0) -> pa.Table:
    """n positions of 3 aircraft, 5 s apart, the tracker's row schema + ingested_at."""
    rows = []
    for i in range(start_offset, start_offset + n):
        t = T0 + timedelta(seconds=5 * (i // 3))
        rows.append({"icao24": f"abc00{i % 3}", "time_position": t, "last_contact": t, "callsign": None,
                     "origin_country": "Germany" if i % 3 else "France", "longitude": 8.5, "latitude": 50.0,
                     "baro_altitude": 10972.8, "geo_altitude": None, "on_ground": False, "velocity": 230.5,
                     "true_track": 90.0, "vertical_rate": 0.0, "squawk": "1000", "category": 3,
                     "position_source": 0, "source": "synthetic", "kafka_partition": 0, "kafka_offset": i,
                     "ingested_at": T0})
    return pa.Table.from_pylist(rows, schema=POSITIONS_ARROW)


@pytest.fixture
def lake(tmp_path):
    """LakeSettings for a SQLite catalog and a local warehouse, nothing from the environment."""
    return LakeSettings.from_env(env={}, catalog_uri=f"sqlite:///{tmp_path}/catalog.db",
                                 warehouse=f"file://{tmp_path}/warehouse")


# ------------------------------------------------------------------ the S3 secret

def test_a_local_http_endpoint_is_reached_path_style_without_tls():
    sql = duck.s3_secret_sql("http://localhost:4566", "us-east-1", "test", "test")
    assert "ENDPOINT 'localhost:4566'" in sql
    assert "URL_STYLE 'path'" in sql and "USE_SSL false" in sql
    assert "KEY_ID 'test'" in sql and "REGION 'us-east-1'" in sql


def test_an_https_endpoint_keeps_tls():
    sql = duck.s3_secret_sql("https://s3.example.internal", "eu-west-1", "k", "s", "tok")
    assert "ENDPOINT 's3.example.internal'" in sql and "USE_SSL true" in sql
    assert "SESSION_TOKEN 'tok'" in sql


def test_no_endpoint_means_aws_itself():
    sql = duck.s3_secret_sql(None, "eu-west-1", "k", "s")
    assert "ENDPOINT" not in sql and "URL_STYLE" not in sql and "USE_SSL" not in sql


def test_a_quote_in_a_credential_cannot_break_the_statement():
    sql = duck.s3_secret_sql(None, "us-east-1", "k", "it's")
    assert "SECRET 'it''s'" in sql


def test_an_endpoint_that_is_not_a_url_is_refused_by_name():
    with pytest.raises(duck.LakeQueryError, match="ftp://x"):
        duck.s3_secret_sql("ftp://x", "us-east-1")


def test_credentials_come_from_the_aws_chain_when_the_catalog_carries_none(monkeypatch):
    # GIVEN the catalog's FileIO properties as LakeSettings builds them (endpoint and region, no keys)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    props = LakeSettings.from_env(env={"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}).file_io_properties()
    # WHEN the secret is built THEN it uses the environment's keys and the endpoint, path style
    sql = duck.s3_secret_from_properties(props)
    assert "KEY_ID 'from-env'" in sql and "SECRET 'env-secret'" in sql
    assert "ENDPOINT '127.0.0.1:4566'" in sql and "URL_STYLE 'path'" in sql


# ------------------------------------------------------------------ extensions and views

def test_the_extensions_load_from_the_pip_packages_without_a_download():
    con = duck.open_connection()
    loaded = dict(con.execute("SELECT extension_name, install_path FROM duckdb_extensions() "
                              "WHERE loaded AND extension_name IN ('httpfs', 'avro', 'iceberg')").fetchall())
    assert sorted(loaded) == ["avro", "httpfs", "iceberg"]
    assert all(path.startswith(str(duck.extension_directory())) for path in loaded.values())
    assert con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone()[0] is False


def test_a_view_names_the_metadata_file_not_the_table_folder():
    sql = duck.view_sql('odd"name', "s3://b/wh/ns/t/metadata/00003-x.metadata.json")
    assert sql == ('CREATE OR REPLACE VIEW "odd""name" AS SELECT * FROM '
                   "iceberg_scan('s3://b/wh/ns/t/metadata/00003-x.metadata.json')")


def test_the_rejects_table_of_the_positions_table_is_also_the_view_rejects():
    views = duck.view_locations({"positions": "m1", "positions_rejects": "m2"}, "positions")
    assert views == {"positions": "m1", "positions_rejects": "m2", "rejects": "m2"}
    assert duck.view_locations({"positions": "m1"}, "positions") == {"positions": "m1"}


def test_connect_counts_what_pyiceberg_committed(lake):
    # GIVEN a positions table with two commits, across UTC midnight, and the rejects table
    catalog = load_catalog(lake)
    table = ensure_table(catalog, lake)
    ensure_rejects_table(catalog, lake)
    table.append(positions(7))
    table.append(positions(5, start_offset=7))
    # WHEN DuckDB connects THEN `positions` has every committed row, `rejects` exists and is empty
    con = duck.connect(lake)
    assert con.execute("SELECT count(*), count(DISTINCT kafka_offset) FROM positions").fetchone() == (12, 12)
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    days = con.execute("SELECT DISTINCT CAST(time_position AS DATE) d FROM positions ORDER BY d").fetchall()
    assert [str(d[0]) for d in days] == ["2026-12-06", "2026-12-07"]


def test_a_connection_sees_the_snapshot_of_its_start_until_refreshed(lake):
    catalog = load_catalog(lake)
    table = ensure_table(catalog, lake)
    table.append(positions(3))
    con = duck.connect(lake, catalog=catalog)
    table.append(positions(4, start_offset=3))
    assert con.execute("SELECT count(*) FROM positions").fetchone() == (3,)
    duck.refresh_views(con, catalog, lake)
    assert con.execute("SELECT count(*) FROM positions").fetchone() == (7,)


def test_an_empty_namespace_gives_no_views(lake):
    con = duck.connect(lake)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)


def test_a_table_whose_metadata_file_is_gone_gets_no_view_and_the_others_still_answer(lake, tmp_path, caplog):
    # GIVEN two tables, and the metadata file of one deleted (S3 kept in memory, its endpoint restarted)
    catalog = load_catalog(lake)
    ensure_table(catalog, lake).append(positions(3))
    rejects = ensure_rejects_table(catalog, lake)
    Path(rejects.metadata_location.removeprefix("file://")).unlink()
    # WHEN DuckDB connects THEN positions answers, the lost table is named in a warning
    con = duck.connect(lake)
    assert con.execute("SELECT count(*) FROM positions").fetchone() == (3,)
    assert "positions_rejects is not readable" in caplog.text
