"""End to end on the real components: synthetic producer -> Kafka -> trigger -> Lambda on MiniStack
-> SNS -> filtered SQS subscriber, reconciled against an independent recount of the run's records."""
import json
import uuid

import pytest

from infra.demo import run as demo



from infra.deploy import aws_resources
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
