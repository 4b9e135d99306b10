"""The bench's synthetic day for the lake's day-scale query (infra.bench.lake.day_positions), without servers."""
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from infra.bench.lake import DAY_COUNTRIES, day_positions
from lakehouse.catalog import POSITIONS_ARROW

DAY = date(2026, 12, 5)


def test_the_day_has_exactly_the_rows_asked_each_position_once_inside_the_utc_day():
    # GIVEN 50,000 positions of 500 aircraft, in 3 appends
    chunks = list(day_positions(50_000, 500, DAY, chunks=3))
    day = pa.concat_tables(chunks)
    # THEN the row count is exact, in the table's schema, every (icao24, time_position) once
    assert [c.schema for c in chunks] == [POSITIONS_ARROW] * 3 and day.num_rows == 50_000
    assert day.group_by(["icao24", "time_position"]).aggregate([]).num_rows == 50_000
    assert pc.count_distinct(day.column("icao24")).as_py() == 500
    # ... every position inside that UTC day (the first second included, midnight after it not)
    start = datetime(2026, 12, 5, tzinfo=timezone.utc)
    assert pc.min(day.column("time_position")).as_py() >= start
    assert pc.max(day.column("time_position")).as_py() < datetime(2026, 12, 6, tzinfo=timezone.utc)
    # ... and each append sorted by icao24, time_position as the archiver writes its files
    for chunk in chunks:
        assert chunk.sort_by([("icao24", "ascending"), ("time_position", "ascending")]).equals(chunk)


def test_countries_are_skewed_and_an_aircraft_reports_every_5_to_10_seconds():
    day = pa.concat_tables(day_positions(100_000, 2_000, DAY))
    counts = sorted(pc.value_counts(day.column("origin_country")).field("counts").to_pylist(), reverse=True)
    assert 50 < len(counts) <= DAY_COUNTRIES
    assert counts[0] > 5 * counts[9] > 0  # a few countries fly most of the positions
    one = day.filter(pc.equal(day.column("icao24"), day.column("icao24")[0]))
    steps = pc.pairwise_diff(pc.cast(one.column("time_position").combine_chunks(), pa.int64())).to_pylist()[1:]
    assert len(set(steps)) == 1 and 5_000_000 <= steps[0] <= 10_000_000
    # a position on the ground has no altitude, as OpenSky's states do
    ground = day.filter(day.column("on_ground"))
    assert ground.num_rows and ground.column("baro_altitude").null_count == ground.num_rows


def test_more_positions_than_a_day_can_hold_is_refused():
    with pytest.raises(ValueError, match="do not fit in one day"):
        next(day_positions(10_000_000, 100, DAY))
