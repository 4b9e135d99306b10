"""The benchmark harness still works: one tiny section through `python -m infra.bench.run` on the real stack."""
import json

import pytest

from infra.bench import run


@pytest.mark.slow  # about 80 s: it deploys its own functions and measures
def test_sink_ceiling_section_writes_a_well_formed_positive_row(stack, tmp_path):
    # GIVEN the running stack and a report path of this test's own (docs/BENCHMARKS.md stays untouched)
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"

    # WHEN only the sink-ceiling section runs, with 200 messages per thread count
    code = run.main(["--sections", "sink", "--sink-messages", "200", "--out", str(report), "--json", str(raw)])

    # THEN it succeeds, and each row says every message reached the subscriber queue at a positive rate
    assert code == 0
    results = json.loads(raw.read_text())
    assert results["errors"] == {}
    rows = results["sink"]["rows"]
    assert [(r["threads"], r.get("processes")) for r in rows] == [(1, None), (4, None), (1, 4)]
    for row in rows:
        assert row["messages"] == 200
        assert row["delivered"] == 200 and row["failed"] == 0
        assert row["seconds"] > 0 and row["rate"] > 0
        assert row["cpu"]["wall_s"] > 0 and row["cpu"]["cpu_s"]["MiniStack"] > 0
        assert row["cpu"]["cpu_s"]["sink clients"] > 0
    # the target's ceiling is the best of the 1- and 4-thread rows; several processes are reported beside it
    assert results["sink"]["ceiling"] == max(r["rate"] for r in rows[:2])
    assert results["sink"]["multi_process"] == rows[2]["rate"]
    # AND the machine and versions are recorded, and the report shows the row next to the targets
    assert results["machine"]["cores"] >= 1 and results["machine"]["versions"]["Kafka broker"] != ""
    text = report.read_text()
    assert "## 1. Sink ceiling" in text and "## Targets" in text
    assert "| 1 process, 1 thread(s) | 200 |" in text and "| 4 processes | 200 |" in text


@pytest.mark.slow  # a few minutes on a loaded machine: Spark's JVM starts once
def test_lake_sections_archive_reconcile_and_both_engines_agree(stack, database_url, tmp_path):
    # GIVEN the running stack (Kafka, MiniStack's S3, the PostgreSQL that holds the Iceberg catalog) and a
    # report path of this test's own
    from lakehouse.catalog import load_catalog
    from lakehouse.settings import LakeSettings
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"

    # WHEN the lake's sections run at tiny sizes: 200 aircraft x 5 positions through the real archiver, and a
    # synthetic day of 100,000 positions queried by DuckDB and Spark
    code = run.main(["--sections", "archive,lakequery", "--archive-aircraft", "200", "--archive-ticks", "5",
                     "--lake-rows", "100000", "--lake-aircraft", "2000", "--lake-appends", "2",
                     "--out", str(report), "--json", str(raw)])

    # THEN it succeeds; every record loaded into Kafka is one row read back from the Iceberg table
    assert code == 0
    results = json.loads(raw.read_text())
    assert results["errors"] == {}
    ar = results["archive"]
    assert ar["records"] == ar["rows"] == ar["distinct_rows"] == 200 * 5
    assert ar["rate"] > 0 and ar["cpu_steady"]["cpu_s"]["archiver"] > 0
    # ... the same positions are smaller as Protobuf than as JSON, and Parquet's size comes from the table's files
    b = ar["bytes"]
    assert b["json"] > b["protobuf"] > 0 and b["parquet_rows"] == ar["rows"] and 0 < b["parquet"] < b["json"]
    # ... the day's table holds every generated row, and DuckDB and Spark give the same answer, row by row
    lq = results["lakequery"]
    assert lq["write"]["files"]["rows"] == 100_000 and lq["write"]["files"]["files"] >= 2
    assert lq["answers_equal"] and lq["duckdb"]["answer_rows"] == lq["spark"]["answer_rows"] > 0
    assert lq["total_aircraft_hours"] >= 2000 and 1 < lq["countries_seen"] <= 120
    for step in (lq["duckdb"]["query"], lq["spark"]["session"], lq["spark"]["query"]):
        assert step["wall_s"] > 0 and step["cpu_s"] > 0
    # AND the throwaway namespaces are gone from the catalog (their files purged with them)
    catalog = load_catalog(LakeSettings.from_env(database_url=database_url))
    assert [ns for ns in catalog.list_namespaces() if ns[0].startswith(f"bench_{results['run_id']}")] == []
    # AND the report shows the three lake tables next to the targets
    text = report.read_text()
    assert "## Lake: archive throughput" in text and "## Lake: bytes per position" in text
    assert "## Lake: a day-scale query" in text and "**equal row by row**" in text
    assert "| archiver -> Iceberg |" in text and "--sections lakequery --lake-rows 100000" in text
