"""ProducerConfig from environment and command line: precedence, defaults, and errors that name the variable."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline_common.settings import ConfigError
from producer.__main__ import main
from producer.settings import ProducerConfig


def test_defaults():
    cfg = ProducerConfig.from_env({})
    assert (cfg.source, cfg.topic, cfg.aircraft, cfg.seed) == ("synthetic", "aviation-data", 5000, 42)
    assert cfg.effective_interval_s == 10.0 and cfg.rate is None
    assert cfg.kafka.bootstrap_servers == "localhost:9092"
    assert cfg.opensky.api_url == "https://opensky-network.org/api"
    assert cfg.opensky.token_url.endswith("/realms/opensky-network/protocol/openid-connect/token")


def test_environment_is_read_and_values_passed_in_code_win():
    env = {"PRODUCER_SOURCE": "opensky", "PRODUCER_BBOX": "45.8,5.9,47.8,10.5", "PRODUCER_ICAO24": "3C6444, 4b1815",
           "KAFKA_TOPIC": "t1", "OPENSKY_API_URL": "http://127.0.0.1:8080/api/", "PRODUCER_INTERVAL": "30",
           "OPENSKY_DAILY_CREDITS": "8000"}  # a feeder: a 1-credit poll every 15 s (5,760/day) fits
    cfg = ProducerConfig.from_env(env, interval_s=15.0)
    assert cfg.opensky.daily_credits == 8000
    assert cfg.source == "opensky" and cfg.topic == "t1"
    assert cfg.bbox == (45.8, 5.9, 47.8, 10.5) and cfg.icao24 == ("3c6444", "4b1815")
    assert cfg.opensky.api_url == "http://127.0.0.1:8080/api"
    assert cfg.interval_s == 15.0 and cfg.effective_interval_s == 15.0


@pytest.mark.parametrize("env, variable", [
    ({"PRODUCER_AIRCRAFT": "lots"}, "PRODUCER_AIRCRAFT"),
    ({"PRODUCER_AIRCRAFT": "0"}, "PRODUCER_AIRCRAFT"),
    ({"PRODUCER_SOURCE": "adsb"}, "PRODUCER_SOURCE"),
    ({"PRODUCER_SOURCE": "opensky", "PRODUCER_BBOX": "1,2,3"}, "PRODUCER_BBOX"),
    ({"PRODUCER_SOURCE": "opensky", "PRODUCER_BBOX": "50,0,40,10"}, "PRODUCER_BBOX"),
    ({"PRODUCER_SOURCE": "opensky", "PRODUCER_ICAO24": "3c644g"}, "PRODUCER_ICAO24"),
    ({"PRODUCER_RATE": "-5"}, "PRODUCER_RATE"),
    ({"OPENSKY_CLIENT_ID": "only-the-id"}, "OPENSKY_CLIENT_SECRET"),
    ({"OPENSKY_TIMEOUT": "soon"}, "OPENSKY_TIMEOUT"),
    ({"PRODUCER_SOURCE": "replay"}, "--replay"),
])
def test_a_malformed_setting_fails_at_start_naming_it(env, variable):
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env(env)
    assert variable in str(err.value)


def test_opensky_is_never_polled_faster_than_its_resolution():
    # Ten polls fit in any day's credits, so only the data resolution limits this short run.
    assert ProducerConfig.from_env({}, source="opensky", interval_s=3.0, max_ticks=10).effective_interval_s == 10.0
    authed = ProducerConfig.from_env({"OPENSKY_CLIENT_ID": "c", "OPENSKY_CLIENT_SECRET": "s"},
                                     source="opensky", interval_s=3.0, max_ticks=10)
    assert authed.effective_interval_s == 5.0
    assert ProducerConfig.from_env({}, source="opensky").effective_interval_s == 10.0


def test_options_that_do_not_fit_the_source_are_refused():
    with pytest.raises(ConfigError, match="needs --source synthetic"):
        ProducerConfig.from_env({}, source="opensky", rate=100.0)
    with pytest.raises(ConfigError, match="need --source opensky"):
        ProducerConfig.from_env({}, bbox=(45.8, 5.9, 47.8, 10.5))
    with pytest.raises(ConfigError, match="--ticks N or --duration"):
        ProducerConfig.from_env({}, export_csv="x.csv")


def test_cli_reports_a_bad_option_on_stderr_with_exit_code_2(capsys):
    assert main(["--source", "opensky", "--rate", "100"]) == 2
    assert "error: PRODUCER_RATE (--rate) needs --source synthetic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a flag's value is refused by the parser itself
        main(["--source", "opensky", "--bbox", "north"])
    assert refused.value.code == 2
    assert "argument --bbox: 'north' must be four numbers" in capsys.readouterr().err


def test_help_lists_every_option_and_its_environment_variable():
    out = subprocess.run([sys.executable, "-m", "producer", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for option in ("--source", "--interval", "--duration", "--max-ticks", "--aircraft", "--seed", "--rate",
                   "--bbox", "--icao24", "--topic", "--export-csv", "--replay", "--batch-rows", "--batch-delay"):
        assert option in out
    for variable in ("PRODUCER_SOURCE", "OPENSKY_CLIENT_ID", "OPENSKY_API_URL", "KAFKA_TOPIC", "PRODUCER_RATE"):
        assert variable in out
