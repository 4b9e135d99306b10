"""infra/progress.py: the one printer every infra job reports its progress with."""
from __future__ import annotations

import subprocess
import sys

from infra import progress


def test_a_line_carries_the_jobs_prefix_on_stdout(capsys):
    # GIVEN the printers the jobs use  WHEN each says something  THEN a person sees the prefix they know
    for prefix in ("[stack]", "[demo]", "==>", "[soak]", "[up]", "[bench]"):
        progress.printer(prefix)("Kafka is up")
    assert capsys.readouterr() == (
        "[stack] Kafka is up\n[demo] Kafka is up\n==> Kafka is up\n[soak] Kafka is up\n"
        "[up] Kafka is up\n[bench] Kafka is up\n", "")


def test_the_default_prefix_is_the_deploy_arrow(capsys):
    progress.say("deployed")
    assert capsys.readouterr().out == "==> deployed\n"


def test_stderr_keeps_a_feed_on_stdout_clean(capsys):
    # observe's notifications feed prints messages on stdout; its own progress goes to stderr
    progress.printer("==>", stderr=True)("listening on flight-notifications-demo")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "==> listening on flight-notifications-demo\n"


def test_a_timed_printer_shows_minutes_and_seconds_since_its_start(capsys):
    now = [1000.0]
    say = progress.timed_printer("bench", clock=lambda: now[0])
    say("start")
    now[0] += 65.9
    say("a minute in")
    now[0] += 3600
    say("over an hour: minutes keep counting")
    assert capsys.readouterr().out.splitlines() == [
        "[bench 00:00] start", "[bench 01:05] a minute in", "[bench 61:05] over an hour: minutes keep counting"]


def test_a_timed_printer_counts_from_a_given_start(capsys):
    progress.timed_printer("bench", started=10.0, clock=lambda: 12.5)("two seconds")
    assert capsys.readouterr().out == "[bench 00:02] two seconds\n"


def test_a_line_lands_before_the_output_of_a_process_started_after_it():
    # Through a pipe Python buffers stdout; without the flush the child's line would come first.
    script = ("import subprocess, sys\nfrom infra import progress\nprogress.say('starting', '[stack]')\n"
              "subprocess.run([sys.executable, '-c', 'print(\"child line\")'], check=True)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "[stack] starting\nchild line\n"
