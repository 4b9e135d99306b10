"""End to end on the real components: synthetic producer -> Kafka -> trigger -> Lambda on MiniStack
-> SNS -> filtered SQS subscriber, the tracker into PostgreSQL and the archiver into the lake's Iceberg
table, reconciled against an independent recount of the run's records."""
import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from infra.demo import run as demo
from infra.demo.lake_recount import DemoLake, LakeRecount
from infra.deploy import aws_resources
from lakehouse import duck
from lakehouse.catalog import load_catalog
from pipeline_common.kafka_client import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def run_where(ranges: dict) -> str:
    """SQL for the run's rows: its offset range in each partition, as the demo's summary gives them."""
    return " OR ".join(f"(kafka_partition = {int(p)} AND kafka_offset >= {first} AND kafka_offset < {end})"
                       for p, (first, end) in ranges.items() if end > first)


@pytest.mark.slow
def test_demo_run_reconciles_on_the_real_pipeline(stack, database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_API_PORT", "0")  # the demo's tracker serves its map on a free port
    # GIVEN a function, topic and subscriber of this test's own (so the metric counts are only ours)
    suffix = uuid.uuid4().hex[:6]
    settings = aws_resources.AwsResourceSettings.from_env(
        function_name=f"e2e-{suffix}", topic_name=f"e2e-{suffix}", queue_name=f"e2e-{suffix}",
        notify_countries=("United States", "Germany", "United Kingdom", "France"))
    summary_path = tmp_path / "summary.json"
    try:
        # WHEN the demo runs the pipeline for a few fleet snapshots
        summary = demo.run_demo(seconds=8, aircraft=250, interval=2.0, seed=7, keep_stack=True,
                                summary_path=summary_path, settings=settings)
    finally:
        aws_resources.destroy(settings, say=lambda _m: None)

    # THEN every count adds up, and the JSON file says the same as the return value
    assert json.loads(summary_path.read_text()) == summary
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert summary["reconciled"], failed
    assert summary["produced"] >= 250 * 3  # at least three snapshots of the whole fleet in 8 s
    assert summary["in_air_by_recount"] > 0 and summary["on_ground_or_no_position"] > 0
    assert summary["published_to_sns"] == summary["function_metrics"]["InAir"]
    assert summary["received_by_subscriber"] == summary["expected_at_subscriber"] > 0
    assert summary["dead_lettered"] == 0
    # a fresh function: make count-messages reads exactly what it reported publishing in this run
    assert summary["count_messages"]["published_before_run_in_window"] == 0
    assert summary["count_messages"]["value"] == summary["published_to_sns"]
    assert summary["function_metrics"]["Received"] == summary["trigger"]["invoked_records"]
    # AND the tracker stored each distinct position of the run once in PostgreSQL
    assert summary["tracker"]["rows_stored"] == summary["tracker"]["distinct_positions_in_kafka"] > 0
    # AND the archiver stored the same positions once in the lake, was stopped by SIGTERM (exit 0), and the
    # gold job's total for the run's day equals the clean recount of that day, which includes the run
    lake = summary["lake"]
    assert lake["error"] is None and lake["archiver"]["exit_code"] == 0
    assert lake["rows_of_run"] == lake["distinct_positions_in_kafka"] == summary["tracker"]["distinct_positions_in_kafka"]
    assert lake["missing"] == lake["not_in_run"] == lake["doubled"] == 0
    assert lake["gold"] and sum(g["run_rows_of_day"] for g in lake["gold"]) == lake["rows_of_run"]
    for g in lake["gold"]:
        assert g["gold_positions"] == g["clean_recount"] >= g["run_clean_of_day"] > 0
    lake_lines = [c for c in summary["checks"] if c["check"].startswith(("lake:", "gold:"))]
    assert len(lake_lines) == 3 + len(lake["gold"]) and all(c["ok"] for c in lake_lines)
    # AND `make lake-sql` (another process, DuckDB) counts the run's rows the same
    where = run_where(lake["kafka_ranges"])
    answer = subprocess.run([sys.executable, "-m", "infra.lake.sql", "--json",
                             f"SELECT count(*) AS n FROM positions WHERE {where}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == [{"n": lake["rows_of_run"]}]

    # AND the same reconciliation, given one position Kafka has and the lake lacks, fails and says MISMATCH
    ranges = {int(p): tuple(r) for p, r in lake["kafka_ranges"].items()}
    demo_lake = DemoLake(summary["settings"]["topic"], KafkaSettings.from_env(), "mismatch-check")
    catalog = load_catalog(demo_lake.settings)
    con = duck.connect(demo_lake.settings, catalog=catalog)   # the run's keys, read by another engine
    keys = set(con.execute(f"SELECT icao24, time_position FROM positions WHERE {where}").fetchall())
    con.close()
    assert len(keys) == lake["rows_of_run"]
    kafka_keys = keys | {("ffffff", datetime(2026, 12, 7, tzinfo=timezone.utc))}
    result = LakeRecount(table=demo_lake.name, archiver_exit=0)
    demo_lake.read_run(result, catalog, catalog.load_table(demo_lake.settings.identifier), ranges, kafka_keys)
    line = next(c for c in demo_lake.checks(result) if c[0].startswith("lake: the run's rows"))
    assert line[1] is False
    assert line[2] == (f"MISMATCH: {len(keys):,} rows vs {len(kafka_keys):,} distinct in Kafka; 1 missing, "
                       "0 not in the run, 0 doubled")
