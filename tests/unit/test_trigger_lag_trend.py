"""The trigger's falling-behind warning: the lag grew for a minute, said with the rates and what to change."""
from trigger.lag_trend import LagTrend


def feed(trend, readings, step=5.0):
    """readings: (lag, committed) every `step` seconds; returns the warnings given."""
    return [w for i, (lag, committed) in enumerate(readings) if (w := trend.observe(i * step, lag, committed))]


def test_a_lag_that_grows_for_a_minute_is_reported_with_the_rates_in_and_out():
    # GIVEN 1,000 records/s arriving and 800/s handled: the lag grows by 200/s
    trend = LagTrend()
    readings = [(200 * 5 * i, 800 * 5 * i) for i in range(14)]
    # WHEN a minute of status lines has passed
    warnings = feed(trend, readings)
    # THEN one warning names the growth, both rates, and what to change
    assert len(warnings) == 1
    w = warnings[0]
    assert (w.lag_before, w.seconds) == (0, 60.0)
    assert round(w.rate_in) == 1000 and round(w.rate_out) == 800
    text = w.advice(batch_size=1000)
    assert "falling behind" in text and "in 1,000 records/s, out 800 records/s" in text
    assert "--batch-size, now 1,000" in text and "--aircraft" in text and "--interval" in text


def test_no_warning_before_a_whole_minute_of_readings():
    trend = LagTrend()
    assert feed(trend, [(1000 * i, 0) for i in range(12)]) == []   # 55 s


def test_snapshot_bursts_that_are_cleared_between_ticks_are_not_falling_behind():
    # GIVEN a producer writing 4,000 records every 5 s that the trigger clears before the next tick:
    # the lag jumps to 4,000 and back to 0
    trend = LagTrend()
    readings = [((4000 if i % 2 else 0), 2000 * i) for i in range(40)]
    # THEN nothing is reported
    assert feed(trend, readings, step=2.5) == []


def test_a_growing_lag_warns_once_a_minute_not_on_every_status_line():
    trend = LagTrend()
    readings = [(100 * 5 * i, 0) for i in range(60)]   # 5 minutes of steady growth
    warnings = feed(trend, readings)
    assert 4 <= len(warnings) <= 5


def test_the_readings_kept_are_bounded_by_the_window():
    trend = LagTrend(window_s=60)
    feed(trend, [(i, i) for i in range(10_000)], step=1.0)
    assert len(trend._readings) <= 62


def test_a_lag_that_stops_growing_stops_the_warnings():
    trend = LagTrend()
    growing = [(500 * i, 0) for i in range(13)]            # up to 6,000 after a minute: one warning
    flat = [(6000, 1000 * i) for i in range(13, 60)]       # then it holds
    warnings = feed(trend, growing + flat)
    assert len(warnings) == 1
