"""Each setting is declared once: docs/CONFIGURATION.md's table, the flags and the error messages come from it."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

import pytest

from infra.reports import settings_table
from pipeline_common.settings import ConfigError, Settings, setting


def test_the_configuration_docs_settings_table_is_the_one_the_declarations_give():
    """GIVEN docs/CONFIGURATION.md WHEN its settings table is compared with the code THEN they are identical
    (after a setting changes in code, `make settings-table` rewrites the table)."""
    assert settings_table.DOC == settings_table.ROOT / "docs" / "CONFIGURATION.md"
    doc = settings_table.DOC.read_text()
    assert settings_table.START in doc and settings_table.END in doc
    assert doc == settings_table.doc_with_table(doc), "run `make settings-table`"


def test_the_check_fails_on_a_stale_table_and_write_repairs_it(tmp_path, monkeypatch):
    # GIVEN a copy of the document whose table lost a row, as after a setting was added in code
    stale = tmp_path / "CONFIGURATION.md"
    stale.write_text(settings_table.DOC.read_text().replace("| `KAFKA_HEAP` |", "| `KAFKA_HEAP_GONE` |"))
    monkeypatch.setattr(settings_table, "DOC", stale)
    # WHEN --check runs THEN it fails; after --write (what `make settings-table` runs) it passes
    assert settings_table.main(["--check"]) == 1
    assert settings_table.main(["--write"]) == 0
    assert settings_table.main(["--check"]) == 0
    assert "| `KAFKA_HEAP` |" in stale.read_text() and "KAFKA_HEAP_GONE" not in stale.read_text()


def test_every_variable_the_components_read_has_a_row():
    table = settings_table.table()
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "TRIGGER_FETCH_MAX_BYTES", "PRODUCER_CONNECT_TIMEOUT",
                     "OPENSKY_MAX_RETRY_AFTER", "LAMBDA_MEMORY", "PUBLISH_BACKOFF_S", "KAFKA_RETENTION_MS",
                     "STACK_STATE_DIR", "LOG_FORMAT"):
        assert f"`{variable}`" in table
    # the consumer fetch defaults the table once got wrong (8 MiB / 64 MiB)
    assert "| `TRIGGER_MAX_PARTITION_FETCH_BYTES` | 2 MiB (2097152) |" in table
    assert "| `TRIGGER_FETCH_MAX_BYTES` | 16 MiB (16777216) |" in table


@dataclass(frozen=True)
class _PollerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "POLLER_"
    interval_s: float = setting("POLLER_INTERVAL_S", 5.0, minimum=0.1, unit="s", help="seconds between polls")
    mode: str = setting("POLLER_MODE", "fast", choices=("fast", "slow"), help="how hard to poll")
    retries: int | None = setting("POLLER_RETRIES", None, minimum=0, maximum=9, help="retries")
    api_key: str | None = setting("POLLER_API_KEY", None, secret=True, help="key")
    verbose: bool = setting("POLLER_VERBOSE", False, help="chatty")


def test_one_declaration_gives_variable_flag_and_message():
    parser = argparse.ArgumentParser()
    _PollerConfig.add_flags(parser)
    flags = parser.format_help()
    assert "--interval-s" in flags and "[POLLER_INTERVAL_S, default 5 s]" in " ".join(flags.split())
    assert "--api-key" not in flags  # a secret is never a flag
    env = {"POLLER_INTERVAL_S": "2.5", "POLLER_MODE": "slow", "POLLER_API_KEY": "k", "POLLER_VERBOSE": "yes"}
    config = _PollerConfig.from_args(parser.parse_args(["--interval-s", "7"]), env)
    assert (config.interval_s, config.mode, config.api_key, config.verbose) == (7.0, "slow", "k", True)
    assert "k" not in repr(config)


@pytest.mark.parametrize("env, message", [
    ({"POLLER_INTERVAL_S": "soon"}, "POLLER_INTERVAL_S='soon' is not a number"),
    ({"POLLER_INTERVAL_S": "0"}, "POLLER_INTERVAL_S=0.0 is below the minimum 0.1 seconds"),
    ({"POLLER_MODE": "lazy"}, "POLLER_MODE='lazy' is not one of fast, slow"),
    ({"POLLER_RETRIES": "10"}, "POLLER_RETRIES=10 is outside 0..9"),
    ({"POLLER_VERBOSE": "maybe"}, "POLLER_VERBOSE='maybe' is not a boolean"),
])
def test_a_bad_value_names_its_variable_whether_it_came_from_the_environment_or_code(env, message):
    with pytest.raises(ConfigError, match=message):
        _PollerConfig.from_env(env)
    with pytest.raises(ConfigError, match="POLLER_RETRIES=-1 is outside 0..9"):
        _PollerConfig(retries=-1)
