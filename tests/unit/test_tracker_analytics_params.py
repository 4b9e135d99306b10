"""GET /analytics/hourly's one parameter, checked before any query runs."""
import pytest

from tracker.api.routes.analytics import MAX_HOURS, parse_hours
from tracker.filters import BadParameter


@pytest.mark.parametrize("raw, hours", [(None, 24), ("", 24), ("1", 1), ("48", 48), (" 6", 6)])
def test_hours_defaults_to_a_day_and_accepts_the_kept_window(raw, hours):
    assert parse_hours(raw) == hours


@pytest.mark.parametrize("raw", ["0", "-3", str(MAX_HOURS + 1), "x", "1.5", "24h"])
def test_a_bad_hours_value_is_rejected_naming_the_parameter(raw):
    with pytest.raises(BadParameter) as err:
        parse_hours(raw)
    assert err.value.parameter == "hours"
    assert str(err.value).startswith("hours: ")
