"""tracker.filters: query parameters -> filters, and the 400 messages that name the parameter."""
import pytest

from tracker.filters import BadParameter, FlightFilter, parse_bbox, parse_since
from tracker.settings import TrackerConfig
from pipeline_common.settings import ConfigError


def test_bbox_is_lamin_lomin_lamax_lomax_and_edges_are_inside():
    box = parse_bbox("45,5,55,15")
    assert box.contains(45.0, 5.0) and box.contains(55.0, 15.0) and not box.contains(44.99, 10)


def test_a_bbox_with_lomin_above_lomax_crosses_the_antimeridian():
    box = parse_bbox("-20,170,20,-170")
    assert box.contains(0, 179.5) and box.contains(0, -175) and not box.contains(0, 0)


@pytest.mark.parametrize("text, problem", [
    ("1,2,3", "4 numbers"), ("a,2,3,4", "not a number"), ("91,0,92,1", "lamin=91.0 is outside"),
    ("0,-181,1,1", "lomin"), ("10,0,5,1", "above lamax"), ("nan,0,1,1", "finite"),
])
def test_a_bad_bbox_names_the_parameter(text, problem):
    with pytest.raises(BadParameter, match=f"bbox: .*{problem}"):
        parse_bbox(text)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"airborne": "maybe"}, "airborne"), ({"min_altitude_ft": "high"}, "min_altitude_ft"),
    ({"min_altitude_ft": "999999"}, "min_altitude_ft"),
])
def test_other_bad_parameters_are_named(kwargs, parameter):
    with pytest.raises(BadParameter) as err:
        FlightFilter.from_params(**kwargs)
    assert err.value.parameter == parameter and str(err.value).startswith(parameter)


def test_since_accepts_iso_with_or_without_zone_and_unix_seconds():
    assert parse_since("2026-12-01T12:00:00Z") == parse_since("2026-12-01T12:00:00") == parse_since("1796126400")
    with pytest.raises(BadParameter, match="since"):
        parse_since("yesterday")


def test_tracker_settings_reject_bad_values_naming_the_variable():
    with pytest.raises(ConfigError, match="TRACKER_BATCH_SIZE"):
        TrackerConfig.from_env(env={"TRACKER_BATCH_SIZE": "0"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        TrackerConfig.from_env(env={"DATABASE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="TRACKER_WS_INTERVAL_S"):
        TrackerConfig.from_env(env={"TRACKER_WS_INTERVAL_S": "0.1"})  # "at most once a second"
    cfg = TrackerConfig.from_env(env={"POSTGRES_PORT": "25432"})
    assert cfg.database == "postgresql://flightpipe@127.0.0.1:25432/flightpipe"
    assert cfg.group_id == "flight-tracker" and cfg.api_port == 8000
