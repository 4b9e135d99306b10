"""Property-based tests (hypothesis) of the small pieces the fault tests rely on: the trigger waiting for
an unreachable broker, the broker's cluster id on the command line, and the report that turns fault
results into docs/RELIABILITY.md without touching anything else in it."""
from __future__ import annotations

import base64
import threading
import uuid
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from infra.reports import reliability_report

from infra.stack import servers as stack
from pipeline_common.kafka_client import KafkaSettings
from trigger import Trigger, TriggerConfig
from pipeline_common.kafka_client import BrokerUnavailable

FAST = settings(max_examples=60, deadline=None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    """A stop event whose waits return at once, move the fake clock on, and are recorded."""

    def __init__(self, clock: FakeClock, stop_after_waits: int | None = None):
        super().__init__()
        self.clock, self.waits, self.stop_after_waits = clock, [], stop_after_waits

    def wait(self, timeout=None):
        self.waits.append(timeout)
        self.clock.now += timeout
        if self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits:
            self.set()
        return self.is_set()


def trigger_failing(failures: int, connect_timeout_s: float, monkeypatch) -> tuple[Trigger, list, FakeClock]:
    """A trigger whose consumer cannot be created `failures` times; each failed bootstrap takes its timeout."""
    clock = FakeClock()
    trigger = Trigger(TriggerConfig(kafka=KafkaSettings(bootstrap_servers="broker-1:9092"),
                                    connect_timeout_s=connect_timeout_s))
    attempts = []

    def make_consumer(bootstrap_timeout_s=30.0):
        attempts.append(bootstrap_timeout_s)
        if len(attempts) <= failures:
            clock.now += bootstrap_timeout_s
            raise (KafkaConnectionError if len(attempts) % 2 else KafkaTimeoutError)("no broker")
        return "consumer"

    monkeypatch.setattr(trigger._group, "make_consumer", make_consumer)
    monkeypatch.setattr("pipeline_common.kafka_client.time", SimpleNamespace(monotonic=clock.monotonic))
    return trigger, attempts, clock


@FAST
@given(st.integers(0, 12), st.floats(1, 600))
def test_the_trigger_waits_for_the_broker_then_connects_or_says_why_not(failures, timeout_s):
    with pytest.MonkeyPatch.context() as monkeypatch:
        trigger, attempts, clock = trigger_failing(failures, timeout_s, monkeypatch)
        stop = RecordingStop(clock)
        try:
            consumer = trigger._group._connect(stop)
        except BrokerUnavailable as exc:
            # THEN it gives up only once the connect timeout is used up, and says where and why
            assert "broker-1:9092" in str(exc) and "not reachable" in str(exc)
            assert clock.now - 1000.0 >= timeout_s and len(attempts) <= failures
            return
    # THEN otherwise it connected after exactly the failures, waiting 1, 2, 4 ... (at most 30) s between,
    # never past the connect timeout
    assert consumer == "consumer" and len(attempts) == failures + 1 and len(stop.waits) == failures
    assert all(0 < w <= min(2.0 ** i, 30.0) for i, w in enumerate(stop.waits))
    assert clock.now - 1000.0 <= timeout_s + 1e-9
    # and each bootstrap attempt is short enough to leave room for a retry within the timeout
    assert all(b == pytest.approx(min(10.0, max(timeout_s / 3, 0.5))) for b in attempts)


def test_a_stop_request_while_waiting_for_the_broker_ends_the_run_quietly(monkeypatch):
    trigger, attempts, clock = trigger_failing(failures=100, connect_timeout_s=600, monkeypatch=monkeypatch)
    stop = RecordingStop(clock, stop_after_waits=2)
    assert trigger.run(stop_event=stop).consumed == 0
    assert len(attempts) == 2 and stop.waits == [1.0, 2.0]


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=16))
@example(b"\xf8" + bytes(15))  # base64 "-AAA...": the id that once failed "kafka-storage format"
def test_the_kafka_cluster_id_never_looks_like_an_option(raw):
    # GIVEN uuid4 returning any 16 bytes first (e.g. ones whose base64 starts with "-"), then fresh ones
    draws = iter([uuid.UUID(bytes=raw)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stack.uuid, "uuid4", lambda: next(draws, None) or uuid.UUID(bytes=bytes(16)))
        cluster_id = stack._kafka_uuid()
    # THEN it is a 22-character url-safe base64 of 16 bytes that a command line cannot mistake for a flag
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# --------------------------------------------------------------------------- the report
text_without_markers = st.text(max_size=200).filter(lambda t: "<!-- results" not in t)


@FAST
@given(text_without_markers, text_without_markers, text_without_markers, text_without_markers)
def test_the_report_replaces_only_its_own_section(head, old_table, tail, new_table):
    doc = f"{head}{reliability_report.START}{old_table}{reliability_report.END}{tail}"
    updated = reliability_report.update_document(doc, new_table)
    assert updated == f"{head}{reliability_report.START}\n{new_table}\n{reliability_report.END}{tail}"
    assert reliability_report.update_document(updated, new_table) == updated  # idempotent


fault_result = st.fixed_dictionaries({
    "fault": st.sampled_from(["trigger-sigkill", "endpoint-paused", "poison-records", "a-new-fault"]),
    "title": st.text(max_size=30), "finished_at": st.just("2026-01-01T00:00:00Z"), "passed": st.booleans(),
    "produced": st.integers(0, 10**6), "in_kafka": st.integers(0, 10**6), "in_air": st.integers(0, 10**6),
    "delivered": st.integers(0, 10**6), "missing": st.integers(0, 10), "duplicates": st.integers(0, 10**4),
    "dead_lettered": st.integers(0, 100), "details": st.just({})})


@FAST
@given(st.lists(fault_result, min_size=1, max_size=6, unique_by=lambda r: r["fault"]))
def test_the_table_has_one_row_per_fault_and_never_breaks_the_markdown(results):
    table = reliability_report.render_table(results, {})
    rows = [line for line in table.splitlines() if line.startswith("| **")]
    assert len(rows) == len(results)
    columns = len(reliability_report.COLUMNS)
    for row in rows:  # a "|" in a title must not add a column
        assert row.replace("\\|", "").count("|") == columns + 1
    for r in results:
        assert f"**{r['fault']}**" in table
        assert ("**FAIL**" if not r["passed"] else "pass") in next(row for row in rows if f"**{r['fault']}**" in row)


def test_the_report_writes_the_document_from_result_files(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "trigger-sigkill.json").write_text('{"fault": "trigger-sigkill", "title": "killed", "passed": true, '
                                                  '"produced": 4200, "in_kafka": 4200, "in_air": 3901, '
                                                  '"delivered": 3901, "missing": 0, "duplicates": 56, '
                                                  '"dead_lettered": 0, "finished_at": "2026-11-21T19:54:10Z", '
                                                  '"details": {"kills": 3, "restart_to_progress_s": [4.6, 4.5, 2.9]}}')
    (results / "history.jsonl").write_text('{"fault": "trigger-sigkill", "passed": true}\n'
                                           '{"fault": "trigger-sigkill", "passed": true}\n')
    doc = tmp_path / "RELIABILITY.md"
    doc.write_text(f"# Reliability\nintro\n{reliability_report.START}\nold\n{reliability_report.END}\noutro\n")
    assert reliability_report.main(["--results", str(results), "--doc", str(doc), "--check"]) == 1
    assert reliability_report.main(["--results", str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "| **trigger-sigkill**: killed | 4,200 | 4,200 | 3,901 | 3,901 | 0 | 56 | 0 | pass | 2/2 |" in text
    assert "3 × SIGKILL, back to work in 4.6, 4.5, 2.9 s" in text
    assert text.startswith("# Reliability\nintro\n") and text.endswith("outro\n") and "old" not in text
    assert reliability_report.main(["--results", str(results), "--doc", str(doc), "--check"]) == 0


# --- the tracker: the same connect loop and the same stuck-rebalance watchdog -------------------------------

def test_the_tracker_waits_for_the_broker_with_the_shared_loop_and_shows_the_last_error(monkeypatch):
    from kafka.structs import MemberState
    from tracker.consumer import TrackerConsumer
    from tracker.live import LivePicture
    from tracker.settings import TrackerConfig

    # GIVEN a tracker whose broker answers only on the third try
    clock = FakeClock()
    tracker = TrackerConsumer(TrackerConfig(kafka=KafkaSettings(bootstrap_servers="broker-1:9092"), topic="t",
                                            connect_timeout_s=60), LivePicture())
    errors_seen, subscribed = [], []
    consumer = SimpleNamespace(subscribe=subscribed.append, _coordinator=SimpleNamespace(state=MemberState.REBALANCING),
                               close=lambda autocommit: None)
    attempts: list[float] = []

    def make_consumer(bootstrap_timeout_s):
        attempts.append(bootstrap_timeout_s)
        errors_seen.append(tracker.stats.kafka_error)
        if len(attempts) < 3:
            clock.now += bootstrap_timeout_s
            raise KafkaConnectionError("no broker")
        return consumer

    monkeypatch.setattr(tracker, "_make_consumer", make_consumer)
    monkeypatch.setattr("pipeline_common.kafka_client.time", SimpleNamespace(monotonic=clock.monotonic))
    stop = RecordingStop(clock)
    # WHEN it connects
    assert tracker._connect(stop) is consumer
    # THEN it waited 1 s, then 2 s, with the last error shown meanwhile, and subscribed once connected
    assert stop.waits == [1.0, 2.0] and subscribed == [["t"]] and tracker.stats.kafka_error is None
    assert errors_seen[1].startswith("KafkaConnectionError") and errors_seen[2].startswith("KafkaConnectionError")
    # and a rebalance that never ends is noticed by the shared watchdog (not on first sight)
    assert not tracker._watchdog.stuck(consumer, 0.0)
    assert tracker._watchdog.stuck(consumer, tracker._watchdog.stuck_after_s + 1)


def test_the_tracker_gives_up_with_the_shared_broker_unavailable_error(monkeypatch):
    from tracker.consumer import TrackerConsumer
    from tracker.live import LivePicture
    from tracker.settings import TrackerConfig

    clock = FakeClock()
    tracker = TrackerConsumer(TrackerConfig(kafka=KafkaSettings(bootstrap_servers="broker-1:9092"), topic="t",
                                            connect_timeout_s=5), LivePicture())

    def make_consumer(bootstrap_timeout_s):
        clock.now += bootstrap_timeout_s
        raise KafkaTimeoutError("no broker")

    monkeypatch.setattr(tracker, "_make_consumer", make_consumer)
    monkeypatch.setattr("pipeline_common.kafka_client.time", SimpleNamespace(monotonic=clock.monotonic))
    with pytest.raises(BrokerUnavailable, match=r"broker-1:9092 is not reachable .*make run"):
        tracker._connect(RecordingStop(clock))
    assert tracker.stats.kafka_error.startswith("KafkaTimeoutError")
