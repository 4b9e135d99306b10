"""`make up` / `make ps` / `make logs` / `make down` (infra/session/up.py, infra/session/parts.py) without servers:
the parts' commands, the record of what was started, the wait for aircraft on a clock the test moves,
and the lines `make ps` prints."""
import os
import signal
from types import SimpleNamespace

import psutil
import pytest

from infra.session import up
from infra.session.parts import UP_SESSION, command, part_named


def test_the_session_is_every_long_running_part_with_the_producer_last():
    assert [p.name for p in UP_SESSION] == ["trigger", "tracker", "archiver", "notifications", "alerts", "producer"]
    assert part_named("notifications").stop_signal == signal.SIGINT  # the printers stop on Ctrl-C
    assert part_named("trigger").stop_signal == signal.SIGTERM


def test_each_part_runs_what_its_make_target_runs_with_both_mappings_in_one_trigger():
    # GIVEN an ARGS in the environment (as `make up ARGS=...` leaves it): it is for `make up`, not a part
    env = {**os.environ, "ARGS": "--timeout 300"}
    # WHEN the commands are read from the Makefile
    trigger, producer = command(part_named("trigger"), env), command(part_named("producer"), env)
    # THEN the trigger runs every mapping of the template, the producer the synthetic fleet
    assert trigger[-3:] == ["trigger", "--mappings", "infra/aws/template.yaml"]
    assert producer[-4:] == ["-m", "producer", "--source", "synthetic"]
    assert "--timeout" not in trigger + producer


def test_a_recorded_part_is_running_only_while_its_pid_has_the_same_start_time(tmp_path):
    me = psutil.Process()
    path = tmp_path / "session.json"
    up.save_session([up.Started("tracker", me.pid, me.create_time(), ["x"], "t.log", 15),
                     up.Started("producer", me.pid, me.create_time() - 3600, ["y"], "p.log", 15)], path)
    same, reused = up.load_session(path)
    assert same.process() is not None and same.command == ["x"]
    assert reused.process() is None  # a later process that got the recorded pid is not the part


def test_no_record_is_an_empty_session_and_a_damaged_one_says_so(tmp_path):
    assert up.load_session(tmp_path / "none.json") == []
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(RuntimeError, match="remove it"):
        up.load_session(tmp_path / "bad.json")


def test_parts_log_for_a_person_and_keep_kafka_pythons_lines_in_one_file(monkeypatch):
    env = up.part_env({"PATH": "/bin"})
    assert env["LOG_FORMAT"] == "console" and env["PYTHONUNBUFFERED"] == "1"
    assert env["KAFKA_CLIENT_LOG"] == str(up.KAFKA_CLIENT_LOG)
    assert up.part_env({"LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"  # the user's choice wins


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def alive_part():
    return SimpleNamespace(name="tracker", process=lambda: object())


def test_waiting_reports_progress_until_the_map_lists_aircraft():
    # GIVEN an API that does not answer for 6 s, then answers with no aircraft for 6 s, then with 1,500
    clock, lines = FakeClock(), []
    answers = iter([None] * 6 + [0] * 6 + [1500])
    # WHEN `make up` waits (progress every 5 s)
    n, dead = up.wait_for_aircraft("http://x", [alive_part()], 60, began=clock.now - 30,
                                   count=lambda url: next(answers), clock=clock, sleep=clock.sleep, out=lines.append)
    # THEN it returns the count, having said what it was waiting for, with the time since `make up` began
    assert (n, dead) == (1500, [])
    assert lines == ["  35 s: the tracker's API does not answer yet",
                     "  40 s: the tracker answers; no aircraft on the map yet"]


def test_waiting_stops_at_a_part_that_exited_and_at_the_timeout():
    clock = FakeClock()
    exited = SimpleNamespace(name="producer", process=lambda: None)
    assert up.wait_for_aircraft("http://x", [alive_part(), exited], 60, clock.now, count=lambda url: 0,
                                clock=clock, sleep=clock.sleep, out=print) == (None, [exited])
    n, dead = up.wait_for_aircraft("http://x", [alive_part()], 10, clock.now, count=lambda url: None,
                                   clock=clock, sleep=clock.sleep, out=lambda line: None)
    assert (n, dead) == (None, []) and clock.now >= 1010


@pytest.mark.parametrize("host, expected", [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"),
                                            ("::1", "http://[::1]:8000")])
def test_the_map_url_is_one_a_browser_on_this_machine_can_open(host, expected):
    assert up.map_base_url(host, 8000) == expected


def test_ps_lines_show_pid_cpu_memory_uptime_and_a_part_that_is_not_running():
    lines = up.format_process_rows([
        {"part": "ministack", "pid": 4242, "cpu": 12.5, "rss_mb": 238.4, "uptime_s": 3723, "children": 3,
         "log": ".state/logs/ministack.out"},
        {"part": "producer", "pid": None, "log": ".state/logs/producer.log"},
    ])
    assert lines[1].split() == ["ministack", "4242", "12.5", "238", "MB", "1:02:03", ".state/logs/ministack.out",
                                "(+3", "child", "processes)"]
    assert lines[2].split()[:2] == ["producer", "-"] and lines[2].endswith("(not running)")


def test_lag_is_summed_over_partitions_as_make_lag_counts_it():
    groups = [("trigger: flight-processor", SimpleNamespace(group_id="flight-processor-esm")),
              ("tracker", SimpleNamespace(group_id="flight-tracker"))]
    offsets = {"flight-processor-esm": {"aviation-data-0": (90, 100), "aviation-data-1": (None, 7)},
               "flight-tracker": {"aviation-data-0": (100, 100)}}
    lines = up.lag_lines(groups, lambda config: offsets[config.group_id])
    assert lines[1].split() == ["flight-processor-esm", "trigger:", "flight-processor", "2", "17"]
    assert lines[2].split() == ["flight-tracker", "tracker", "1", "0"]


def test_make_logs_follows_the_services_or_the_parts_named():
    # the printers' lines are data (a line per notification): followed when asked for by name only
    assert [f.name for f in up.logs_to_follow(None)] == ["trigger.log", "tracker.log", "archiver.log", "producer.log"]
    assert [f.name for f in up.logs_to_follow("notifications")] == ["notifications.log"]
    assert [f.name for f in up.logs_to_follow("tracker, kafka")] == ["tracker.log", "kafka.out"]
    with pytest.raises(ValueError, match="no part called tracer; PART is one of trigger, tracker"):
        up.logs_to_follow("tracer")
