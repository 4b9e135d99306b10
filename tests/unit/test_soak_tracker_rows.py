"""The soak's verdict on the tracker's history: PostgreSQL rows against the distinct positions in Kafka,
the tracker's own last line read from its JSON log, and the report's lines on both."""
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from infra.demo.tracker_recount import TrackerRecount
from infra.soak import report, tracker_rows
from pipeline_common.logs import JsonFormatter


def write_tracker_log(path: Path, *messages: tuple[str, tuple]) -> Path:
    """A log file as the tracker writes it under the soak (LOG_FORMAT=json), through the real formatter."""
    formatter = JsonFormatter()
    lines = ["some library noise that is not JSON"]
    for msg, args in messages:
        record = logging.LogRecord("tracker.consumer", logging.INFO, __file__, 1, msg, args, None)
        lines.append(formatter.format(record))
    path.write_text("\n".join(lines) + "\n")
    return path


STOPPED = "tracker stopped: %d consumed, %d stored, %d duplicates skipped, %d rejected, %d past retention"


def by_name(checks):
    return {name: (ok, detail) for name, ok, detail in checks}


# --- the tracker's last line -------------------------------------------------------------------------------

def test_the_tracker_summary_is_its_last_stopped_line(tmp_path):
    log = write_tracker_log(tmp_path / "tracker.log",
                            ("status: %d aircraft live", (12,)),
                            (STOPPED, (100, 90, 10, 0, 0)),
                            (STOPPED, (36000, 35990, 10, 2, 0)))
    assert tracker_rows.tracker_summary(log) == {"consumed": 36000, "stored": 35990, "duplicates": 10,
                                                 "rejected": 2, "past_retention": 0}


def test_a_maintenance_pass_count_on_the_stopped_line_is_read_too(tmp_path):
    log = write_tracker_log(tmp_path / "tracker.log", (STOPPED + ", %d maintenance passes", (5, 5, 0, 0, 0, 16)))
    assert tracker_rows.tracker_summary(log)["maintenance_passes"] == 16


def test_a_tracker_that_was_killed_has_no_summary(tmp_path):
    log = write_tracker_log(tmp_path / "tracker.log", ("status: %d aircraft live", (12,)))
    assert tracker_rows.tracker_summary(log) == {}
    assert tracker_rows.tracker_summary(tmp_path / "missing.log") == {}


# --- the verdict -------------------------------------------------------------------------------------------

def test_every_distinct_position_stored_once_reconciles():
    found = TrackerRecount(records=36_000, distinct_positions=35_400, malformed=3, rows=35_400, rejects=3)
    checks = by_name(tracker_rows.checks(found, {"stored": 35_400}))
    assert all(ok for ok, _ in checks.values()), checks
    assert checks[tracker_rows.ROWS_CHECK][1] == ("expected 35,400 rows (distinct (icao24, time_position) among "
                                                  "36,000 records), found 35,400")


def test_a_tracker_that_counted_rows_it_never_committed_fails_with_expected_and_found():
    # GIVEN issue 20: the tracker logged every position stored and committed its offsets, PostgreSQL holds none
    found = TrackerRecount(records=1_119, distinct_positions=1_119, malformed=0, rows=0, rejects=0)
    checks = by_name(tracker_rows.checks(found, {"stored": 1_119}))
    # THEN both the store check and the tracker's own count fail, each with the two numbers
    ok, detail = checks[tracker_rows.ROWS_CHECK]
    assert not ok and "expected 1,119 rows" in detail and detail.endswith("found 0")
    assert checks[tracker_rows.OWN_COUNT_CHECK] == (False, "the tracker logged 1,119 stored, PostgreSQL has 0")


def test_rows_stored_twice_or_rejects_missing_fail():
    found = TrackerRecount(records=10, distinct_positions=8, malformed=2, rows=9, rejects=0)
    checks = by_name(tracker_rows.checks(found, {"stored": 9}))
    assert not checks[tracker_rows.ROWS_CHECK][0]
    assert checks[tracker_rows.REJECTS_CHECK] == (False, "expected 2 (malformed records in Kafka), found 0")
    assert checks[tracker_rows.OWN_COUNT_CHECK][0]


def test_a_tracker_that_reported_no_count_fails_that_check_and_says_why():
    found = TrackerRecount(records=5, distinct_positions=5, rows=5)
    ok, detail = by_name(tracker_rows.checks(found, {}))[tracker_rows.OWN_COUNT_CHECK]
    assert not ok and "did not stop on SIGTERM" in detail


def test_positions_past_retention_are_named_in_the_detail():
    found = TrackerRecount(records=5, distinct_positions=5, rows=3)
    ok, detail = by_name(tracker_rows.checks(found, {"stored": 3, "past_retention": 2}))[tracker_rows.ROWS_CHECK]
    assert not ok and "2 past the retention window were not stored, by policy" in detail


def test_a_recount_that_cannot_be_made_is_a_failed_check_with_the_reason(tmp_path, monkeypatch):
    # GIVEN a database that does not answer when the soak counts
    def unreachable(*args):
        raise OSError("connection refused")
    monkeypatch.setattr(tracker_rows, "recount", unreachable)
    figures, checks, found = tracker_rows.reconcile(None, "aviation-data", {0: 0}, datetime.now(timezone.utc),
                                                    tmp_path / "tracker.log")
    # THEN the run does not pass silently: the rows check fails and names the error
    assert checks == [(tracker_rows.ROWS_CHECK, False, "could not recount: OSError: connection refused")]
    assert figures["error"] == "OSError: connection refused" and found is None


def test_reconcile_passes_the_soak_range_to_the_recount(tmp_path, monkeypatch):
    seen = {}

    def fake(kafka, topic, start_offsets, since):
        seen.update(topic=topic, start_offsets=start_offsets, since=since)
        return TrackerRecount(records=4, distinct_positions=4, rows=4)
    monkeypatch.setattr(tracker_rows, "recount", fake)
    since = datetime(2026, 12, 6, 23, 59, tzinfo=timezone.utc)
    log = write_tracker_log(tmp_path / "tracker.log", (STOPPED, (4, 4, 0, 0, 0)))
    figures, checks, found = tracker_rows.reconcile(None, "aviation-data", {0: 7, 1: 0}, since, log)
    assert seen == {"topic": "aviation-data", "start_offsets": {0: 7, 1: 0}, "since": since}
    assert figures["rows"] == 4 and figures["tracker_log"]["stored"] == 4 and found.rows == 4
    assert all(ok for _, ok, _ in checks)


# --- the report --------------------------------------------------------------------------------------------

def a_result(tracker, maintenance=None):
    result = {
        "started_at": "2026-12-06T22:00:00Z", "minutes": 3, "interval_s": 10, "warmup_s": 36,
        "machine": {"cores": 2, "memory_gib": 8, "cpu_model": "test", "versions": {}},
        "load_before": [0.1], "load_after": [0.2], "parts": [{"name": "tracker", "command": "python -m tracker"}],
        "samples": [], "gates": [], "died": [], "ministack": {},
        "reconciliation": {"checks": [{"check": tracker_rows.ROWS_CHECK, "ok": False, "detail": "expected 5 rows"}],
                           "produced": 5, "in_air_by_recount": 5, "function_metrics": {"Published": 5},
                           "received_by_subscriber": None, "dead_lettered": 0, "duplicates_invoked": 0,
                           "tracker": tracker},
        "passed": False,
    }
    if maintenance:
        result["maintenance"] = maintenance
    return result


@pytest.mark.parametrize("tracker, sentence", [
    ({"rows": 0, "distinct_positions": 1119, "records": 1119, "rejects": 0, "malformed": 0},
     "Tracker: 0 rows in PostgreSQL for 1,119 distinct positions among 1,119 records in Kafka"),
    ({"error": "TimeoutError: could not read"}, "Tracker: no recount (TimeoutError: could not read)"),
])
def test_the_report_shows_the_tracker_counts_and_the_maintenance_interval(tracker, sentence):
    text = report.render(a_result(tracker, {"interval_s": 120, "tracker_ran_s": 1830.0, "passes_due": 15}),
                         {}, Path("/tmp/SOAK.md"), "make soak")
    assert sentence in text
    assert "maintenance pass (retention, partitions) every 120 s" in text
    assert "15 passes due in its 30.5 minutes" in text
    assert f"| {tracker_rows.ROWS_CHECK} | **no** | expected 5 rows |" in text


def test_a_report_from_an_older_run_without_these_figures_still_renders():
    text = report.render(a_result(None), {}, Path("/tmp/SOAK.md"), "make soak")
    assert "**FAILED**" in text and "Tracker:" not in text and "maintenance pass (" not in text


def test_the_summary_gives_the_rate_the_verdict_and_every_failure_for_the_benchmark_report(tmp_path):
    result = a_result({"rows": 5})
    result.update(minutes=10, gates=[{"name": "memory MiniStack", "ok": False, "measured": "+1.30 MB/min"},
                                     {"name": "lag flight-trigger", "ok": True, "measured": "+0"}])
    result["reconciliation"].update(produced=300_000, reconciled=False)
    summary = report.summary(result)
    assert summary["positions_per_s"] == 500 and summary["passed"] is False and summary["reconciled"] is False
    assert summary["failed"] == ["memory MiniStack: +1.30 MB/min", f"{tracker_rows.ROWS_CHECK}: expected 5 rows"]
    # AND the benchmark report states it as the session target, not met, with what it measured
    from infra.bench import report as bench_report
    (target,) = [t for t in bench_report.evaluate_targets({"session": summary}) if t["key"] == "session"]
    assert target["met"] is False and target["measured"] == 500
    assert target["shown"].startswith("500 positions/s for 10 min, failed: memory MiniStack: +1.30 MB/min")
    passed = dict(summary, passed=True, failed=[], minutes=60, positions_per_s=1000)
    (target,) = [t for t in bench_report.evaluate_targets({"session": passed}) if t["key"] == "session"]
    assert target["met"] is True and target["bound"] == ""


def _machine_samples(steal_per_10s: list[float], session_cores: float, busy_cores: float) -> list[dict]:
    """Samples every 10 s on 2 cores: the session's processes use session_cores, the machine busy_cores,
    and the hypervisor steals the given CPU seconds in each interval."""
    samples, steal = [], 0.0
    for i, stolen in enumerate([0.0] + steal_per_10s):
        steal += stolen
        t = 10.0 * i
        samples.append({"t": t, "produced": 0, "committed": {}, "lag": {}, "memory_mb": {}, "queues": {},
                        "cpu_s": {"MiniStack": session_cores * t * 0.5, "tracker": session_cores * t * 0.5},
                        "machine_cpu_s": {"busy": 1000 + busy_cores * t, "steal": steal, "total": 5000 + 2 * t}})
    return samples


def test_the_report_says_how_busy_the_machine_was_and_what_the_hypervisor_took():
    # GIVEN a 3-minute run (warm-up 36 s) where the session used 1.2 cores, the machine 1.3, and the
    # hypervisor took 4 of 20 CPU seconds in one minute (three 10-s intervals) and nothing otherwise
    result = a_result(None)
    result["samples"] = _machine_samples([0.0] * 9 + [1.5, 1.5, 1.0] + [0.0] * 6, session_cores=1.2, busy_cores=1.3)
    share = report.machine_share(result)
    # THEN the shares are the machine's, measured after the warm-up
    assert share["cores"] == pytest.approx(2.0) and share["busy"] == pytest.approx(1.3)
    assert share["session"] == pytest.approx(1.2) and share["rest"] == pytest.approx(0.1)
    assert share["steal"] == pytest.approx(4.0 / (2 * 140)) and share["steal_worst_minute"] == pytest.approx(4.0 / 120)
    result["load_after"] = [9.0]   # a load average the session's own processes can reach on 2 cores
    text = report.render(result, {}, Path("/tmp/SOAK.md"), "make soak")
    assert "1.30 of 2 cores busy on average, 1.20 of them the session's processes, 0.10 the rest" in text
    assert "measured with other load" not in text   # 3.3 % in the worst minute, 0.1 core besides the session


def test_a_machine_whose_time_was_stolen_is_flagged_as_measured_with_other_load():
    result = a_result(None)
    result["samples"] = _machine_samples([0.0] * 9 + [4.0] * 6 + [0.0] * 3, session_cores=1.2, busy_cores=1.25)
    text = report.render(result, {}, Path("/tmp/SOAK.md"), "make soak")
    assert "**measured with other load** (CPU after the warm-up" in text and "20.0% in the worst minute" in text


def test_the_report_says_which_ministack_bounds_the_run_had():
    result = a_result(None)
    result["ministack_retention_s"] = 120.0
    text = report.render(result, {}, Path("/tmp/SOAK.md"), "make soak")
    assert "MiniStack's log streams and raw datapoints kept 120 s" in text
