"""`python -m trigger`: help, and a clear error for a bad setting."""
from __future__ import annotations

import subprocess
import sys

import trigger.__main__ as cli
from trigger.__main__ import build_parser, main


def test_help_lists_the_aws_named_settings():
    out = subprocess.run([sys.executable, "-m", "trigger", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--batch-size", "--maximum-batching-window-s", "--starting-position", "--maximum-retry-attempts",
                 "--bisect-batch-on-function-error", "--report-batch-item-failures", "TRIGGER_GROUP_ID"):
        assert flag in out.stdout


def test_flags_parse_into_settings():
    args = build_parser().parse_args(["--batch-size", "500", "--starting-position", "latest",
                                      "--bisect-batch-on-function-error", "true", "--until-idle-s", "3"])
    assert args.batch_size == 500 and args.starting_position == "LATEST"
    assert args.bisect_batch_on_function_error is True and args.until_idle_s == 3


def test_a_bad_setting_exits_2_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("TRIGGER_BATCH_SIZE", "0")
    monkeypatch.setattr(cli, "configure_logging", lambda: None)  # keep pytest's log capture in place
    assert main([]) == 2
    assert "TRIGGER_BATCH_SIZE" in capsys.readouterr().err
