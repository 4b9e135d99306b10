"""The data-quality checks' pure parts: what a failure says, the check names, the rules read from gold.sql, when
Kafka still holds a day, freshness on a given clock; and tracker.maintain's plan. No servers."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from lakehouse import quality
from lakehouse.quality import CheckResult, QualityCheckFailed, failure_message, require_ok
from tracker import maintain

DAY = date(2026, 12, 6)


def test_a_failure_message_names_each_failing_check_with_expected_and_found():
    # GIVEN three results, two failed
    results = [CheckResult("rows.lake_vs_postgresql", False, 299, 300, "lake 299, PostgreSQL 300"),
               CheckResult("duplicates.lake", False, 0, 1, "e.g. 3c0001 2026-12-06T10:00:00Z x2"),
               CheckResult("values.silver", True, "0 rows breaking a positions_clean rule", "0 rows")]
    # WHEN require_ok sees them THEN it raises with one line per failing check, in order, none for the passing one
    with pytest.raises(QualityCheckFailed) as failed:
        require_ok(results, DAY)
    assert str(failed.value) == (
        "2 of 3 data-quality checks failed for 2026-12-06:\n"
        "  rows.lake_vs_postgresql: expected 299, found 300 (lake 299, PostgreSQL 300)\n"
        "  duplicates.lake: expected 0, found 1 (e.g. 3c0001 2026-12-06T10:00:00Z x2)")
    assert [r.name for r in failed.value.failures] == ["rows.lake_vs_postgresql", "duplicates.lake"]
    assert failed.value.results == results


def test_skipped_and_passing_checks_do_not_raise():
    results = [CheckResult("freshness.lake", True, None, None, "skipped: not today", skipped=True),
               CheckResult("duplicates.lake", True, 0, 0)]
    assert require_ok(results) == results
    assert failure_message([CheckResult("x", False, 1, 2)]) == "1 of 1 data-quality checks failed:\n  x: expected 1, found 2"


def test_one_line_per_check_for_a_person():
    assert CheckResult("duplicates.lake", False, 0, 1, "e.g. k").line() == \
        "duplicates.lake          FAILED   expected 0  found 1  (e.g. k)"
    assert CheckResult("duplicates.lake", True, 0, 0).line() == "duplicates.lake          ok       expected 0  found 0"
    assert CheckResult("rows.lake_vs_kafka", True, None, None, "skipped: topic retention starts at x",
                       skipped=True).line() == "rows.lake_vs_kafka       skipped  skipped: topic retention starts at x"


def test_checks_are_chosen_by_group_or_full_name_and_an_unknown_one_is_refused():
    assert quality.select(None) == quality.NAMES
    assert quality.select("rows") == ("rows.lake_vs_postgresql", "rows.lake_vs_kafka")
    assert quality.select("values.silver, duplicates") == ("duplicates.lake", "duplicates.postgresql",
                                                          "values.silver")
    with pytest.raises(ValueError, match="unknown check speed: say some of rows, duplicates"):
        quality.select("rows,speed")


def test_the_rules_come_from_gold_sql_itself():
    rules = quality.clean_rules()
    assert "(baro_altitude IS NULL OR baro_altitude BETWEEN -460 AND 18300)" in rules
    assert "NOT (latitude = 0 AND longitude = 0)" in rules     # its trailing comment stripped
    assert len(rules) == 8
    # A changed bound in gold.sql is the checks' bound too
    changed = "FROM numbered\nWHERE copy_number = 1\n  AND velocity < 5  -- slow\nORDER BY icao24"
    assert quality.clean_rules(changed) == ["velocity < 5"]
    with pytest.raises(ValueError):
        quality.clean_rules("SELECT 1")
    assert quality.broken("latitude BETWEEN -90 AND 90") == "(latitude BETWEEN -90 AND 90) IS NOT TRUE"


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def test_kafka_holds_the_day_only_when_no_record_of_it_can_have_been_deleted():
    since = datetime(2026, 12, 5, 23, 50, tzinfo=timezone.utc)
    # never lost a record / first kept record older than the day: holds it
    assert quality.kafka_holds_day({0: (0, _ms(since) + 5), 1: (40, _ms(since) - 1)}, _ms(since)) == (True, "")
    # retention deleted records up to 03:00 of the day on partition 1: skipped, and says from when
    held, why = quality.kafka_holds_day({0: (0, None), 1: (40, _ms(since + timedelta(hours=3)))}, _ms(since))
    assert not held
    assert why == "skipped: topic retention starts at 2026-12-06T02:50:00Z (partition 1), after 2026-12-05T23:50:00Z"
    # a partition whose every record was deleted
    held, why = quality.kafka_holds_day({2: (17, None)}, _ms(since))
    assert not held and "deleted every record of partition 2" in why


def test_freshness_on_a_given_clock():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    ok = quality.age_result("freshness.lake", now - timedelta(seconds=899), now, 900, "the lake")
    late = quality.age_result("freshness.lake", now - timedelta(seconds=901), now, 900, "the lake")
    none = quality.age_result("freshness.lake", None, now, 900, "the lake")
    assert ok.ok and ok.found == "899 s old"
    assert not late.ok and late.expected == "newest position younger than 900 s" and late.found == "901 s old"
    assert not none.ok and none.found == "no position of today"


def test_the_command_refuses_a_bad_day_or_check_with_exit_2(capsys):
    for argv in (["--day", "2026-13-01"], ["--day", "2026-12-06", "--checks", "nope"]):
        with pytest.raises(SystemExit) as exit_:
            quality.main(argv)
        assert exit_.value.code == 2
    assert "unknown check nope" in capsys.readouterr().err
    assert quality.day_argument("yesterday", today=DAY) == DAY - timedelta(days=1)


def test_the_maintenance_plan_drops_past_retention_and_creates_the_coming_days():
    today = date(2026, 12, 7)
    existing = [date(2026, 11, 1), date(2026, 11, 29), date(2026, 11, 30), today]
    plan = maintain.plan(existing, retention_days=7, ahead_days=2, today=today)
    assert plan.oldest_kept == date(2026, 11, 30)
    assert plan.drop == ["positions_p20261101", "positions_p20261129"]
    assert plan.create == ["positions_p20261208", "positions_p20261209"]
    assert plan.lines(7, dry_run=True) == [
        "retention keeps days from 2026-11-30 on (TRACKER_RETENTION_DAYS=7)",
        "would drop 2 partition(s): positions_p20261101, positions_p20261129",
        "would create 2 partition(s): positions_p20261208, positions_p20261209",
        "partitions after: 4, 2026-11-30 .. 2026-12-09"]
    assert maintain.plan(existing, retention_days=0, ahead_days=0, today=today).drop == []
