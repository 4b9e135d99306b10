"""tracker.flight_view.FlightsView: GET /flights' snapshot of the live picture, taken at most once per push
interval, and its bodies (JSON and GeoJSON) equal to encoding every aircraft afresh."""
import json
from datetime import datetime, timedelta, timezone

from saved_events import load_event
from tracker.flight_view import FlightJsonCache, FlightsView, flight, geojson
from tracker.live import LivePicture
from tracker.records import decode

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def pos(icao24: str, seconds: int = 0, **fields):
    state = load_event("raw_state.json")
    state.update(icao24=icao24, time_position=(T0 + timedelta(seconds=seconds)).timestamp(), **fields)
    return decode(json.dumps(state).encode(), 0, seconds)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_change_shows_once_the_interval_has_passed_and_an_unchanged_picture_keeps_its_view():
    live, clock = LivePicture(), Clock()
    view = FlightsView(live, FlightJsonCache(), max_age_s=1.0, clock=clock)
    live.update([pos("aaaaaa")])
    first = view.current()
    assert [p.icao24 for p in first.positions] == ["aaaaaa"]
    # WHEN an aircraft appears within the interval THEN the view is the one taken before (one push old)
    live.update([pos("bbbbbb")])
    clock.now += 0.4
    assert view.current() is first
    # WHEN the interval has passed THEN a new view, with a new ETag, shows it
    clock.now += 0.6
    second = view.current()
    assert {p.icao24 for p in second.positions} == {"aaaaaa", "bbbbbb"} and second.etag != first.etag
    # WHEN nothing changes THEN the view (and its ETag) stays, however long
    clock.now += 60
    assert view.current() is second


def test_the_bodies_equal_encoding_every_aircraft_afresh():
    live = LivePicture()
    live.update([pos("aaaaaa", callsign="DLH1    "), pos("bbbbbb", latitude=None, longitude=None),
                 pos("cccccc", origin_country="Österreich")])
    view = FlightsView(live, FlightJsonCache()).current()
    flights = [flight(p) for p in view.positions]
    body = json.loads(view.json_body())
    assert body == {"count": 3, "time": view.time, "flights": flights}
    assert view.json_body() is view.json_body()  # encoded once per view
    assert json.loads(view.geojson_body()) == geojson(flights)
    some = [p for p in view.positions if p.icao24 != "aaaaaa"]
    assert json.loads(view.geojson_body(some)) == geojson([flight(p) for p in some])
    texts = [t for p, t in zip(view.positions, view.texts) if p.icao24 == "cccccc"]
    assert json.loads(view.json_body(texts))["flights"] == [flight(view.positions[2])]


def test_the_cache_holds_each_aircraft_in_about_its_own_size():
    import tracemalloc

    positions = [pos(f"{n:06x}") for n in range(1000)]
    cache = FlightJsonCache()
    tracemalloc.start()
    try:
        texts = [cache.get_bytes(p) for p in positions]
        features = [cache.feature(p) for p in positions]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    encoded = sum(map(len, texts)) + sum(map(len, features))
    # orjson's own result keeps an ~8 KB buffer per call: 1,000 aircraft would hold ~16 MB
    assert held < 3 * encoded, (held, encoded)
