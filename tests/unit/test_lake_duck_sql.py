"""`make lake-sql` (infra/lake/sql.py): what a person sees for an answer, for --json, and for a bad query,
on a file-backed catalog and warehouse (no server)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from infra.lake import sql as lake_sql
from lakehouse.catalog import ensure_rejects_table, ensure_table, load_catalog
from lakehouse.settings import LakeSettings
from test_lake_duck import positions


@pytest.fixture
def lake_env(tmp_path, monkeypatch):
    """A lake with 12 positions in a SQLite catalog and a local warehouse, named by LAKE_* variables."""
    monkeypatch.setenv("LAKE_CATALOG_URI", f"sqlite:///{tmp_path}/catalog.db")
    monkeypatch.setenv("LAKE_WAREHOUSE", f"file://{tmp_path}/warehouse")
    settings = LakeSettings.from_env()
    catalog = load_catalog(settings)
    ensure_table(catalog, settings).append(positions(12))
    ensure_rejects_table(catalog, settings)
    return settings


def test_the_answer_is_a_small_table(lake_env, capsys):
    code = lake_sql.main(["SELECT origin_country, count(*) AS n FROM positions GROUP BY 1 ORDER BY 1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["origin_country", "n"]
    assert out[2].split() == ["France", "4"] and out[3].split() == ["Germany", "8"]
    assert out[-1] == "(2 rows)"


def test_json_prints_one_array_of_objects(lake_env, capsys):
    code = lake_sql.main(["--json", "SELECT count(*) AS n, min(time_position) AS first FROM positions"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 12, "first": "2026-12-06T23:59:50+00:00"}]


def test_max_rows_says_how_many_were_left_out(lake_env, capsys):
    assert lake_sql.main(["--max-rows", "2", "SELECT kafka_offset FROM positions ORDER BY 1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.strip() for line in out[2:-1]] == ["0", "1"]
    assert out[-1] == "(12 rows (10 not shown; --max-rows))"


def test_a_bad_query_is_exit_2_with_duckdbs_reason(lake_env, capsys):
    assert lake_sql.main(["SELEC count(*) FROM positions"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lake-sql: Parser Error") and "SELEC" in err


def test_an_unknown_table_lists_the_lakes_tables(lake_env, capsys):
    assert lake_sql.main(["SELECT count(*) FROM positons"]) == 2
    err = capsys.readouterr().err
    assert "positons" in err and "the lake's tables: positions, positions_rejects, rejects" in err


def test_an_empty_query_is_refused(lake_env, capsys):
    assert lake_sql.main(["  "]) == 2
    assert "no SQL given" in capsys.readouterr().err


def test_a_lake_that_cannot_be_opened_is_exit_1_naming_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("LAKE_WAREHOUSE", "ftp://nowhere")
    assert lake_sql.main(["SELECT 1"]) == 1
    assert "LAKE_WAREHOUSE='ftp://nowhere'" in capsys.readouterr().err


def test_a_catalog_database_that_does_not_answer_is_exit_1_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("LAKE_CATALOG_URI", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert lake_sql.main(["SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lake-sql: cannot open the lake (catalog 'lake', warehouse s3://flightpipe-lake/warehouse)")
    assert "OperationalError" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value, text", [
    (None, "NULL"), (True, "true"), (3, "3"), (10972.7900390625, "10972.79004"), (0.5, "0.5"),
    (Decimal("1.50"), "1.50"), (datetime(2026, 12, 7, 0, 0, 5, tzinfo=timezone.utc), "2026-12-07 00:00:05Z"),
    (float("nan"), "nan"),
])
def test_cell_text(value, text):
    assert lake_sql.cell_text(value) == text


def test_numbers_are_right_aligned_and_text_left_aligned():
    table = lake_sql.format_table(["name", "n"], [["a", 5], ["bbbb", 12345]])
    assert table.splitlines() == ["name      n", "----  -----", "a         5", "bbbb  12345", "(2 rows)"]

