"""The live map in a real headless Chromium against the real tracker:
synthetic producer -> Kafka -> `python -m tracker` -> PostgreSQL + live picture -> REST/WebSocket -> page.

Read like a person using the page: open it, wait for the aircraft count, click an aircraft, see its
details and trail; lose the connection, see the banner, see it come back by itself.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.web import map_assets
from fault_harness import TcpProxy, free_port, wait_until
from tracker_support import fresh_topic, isolated_schema, produce, state, tracker_process

ROOT = Path(__file__).resolve().parents[2]
AIRCRAFT = 300
TICKS = 4
# Every run keeps its screenshot as an artefact; UPDATE_DOCS_SCREENSHOT=1 also refreshes the README's one.
SCREENSHOT = ROOT / ".state" / "screenshots" / "map.png"
DOCS_SCREENSHOT = ROOT / "docs" / "map.png"


@dataclass(frozen=True)
class Tracker:
    url: str
    topic: str
    bootstrap: str


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def chromium():
    missing = map_assets.browser_missing()
    if missing:
        message = (f"headless Chromium is missing ({', '.join(missing)}): `make setup` installs Debian's "
                   "chromium and chromium-driver")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)  # in CI the browser test must run, never be skipped
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = map_assets.launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def tracker(stack, database_url, tmp_path_factory):
    """`python -m tracker` on a topic and a schema of its own, fed by the synthetic producer; yields its URL."""
    with fresh_topic(stack.bootstrap, partitions=2) as topic, isolated_schema(database_url) as url:
        port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "KAFKA_TOPIC": topic,
               "DATABASE_URL": url, "TRACKER_GROUP_ID": f"tracker-{topic}", "TRACKER_API_PORT": str(port),
               "TRACKER_API_HOST": "127.0.0.1", "TRACKER_BATCH_LINGER_S": "0.1"}
        log_path = tmp_path_factory.mktemp("tracker") / "tracker.log"
        with tracker_process(env, log_path) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: proc.poll() is None and _get(f"{base}/stats"), 60, "the tracker API to answer")
            producer = subprocess.run(
                [sys.executable, "-m", "producer", "--source", "synthetic", "--aircraft", str(AIRCRAFT),
                 "--max-ticks", str(TICKS), "--interval", "1", "--seed", "7", "--topic", topic],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert producer.returncode == 0, producer.stderr[-2000:]
            wait_until(lambda: _get(f"{base}/stats")["positions_total"] >= AIRCRAFT * TICKS, 60,
                       f"the tracker to store {AIRCRAFT * TICKS} positions")
            yield Tracker(base, topic, stack.bootstrap)


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 850})
    map_assets.local_only(page)  # no map tiles from the internet: the plain background is used
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors


def _counter(page, label: str) -> int:
    return int(page.get_by_label(label).inner_text().replace(",", ""))


def _pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The colour a person sees at page point (x, y): a 1x1 screenshot, its PNG decoded here. With one
    pixel every PNG row filter adds zero, so the bytes after the filter byte are the colour as is."""
    png = page.screenshot(clip={"x": round(x), "y": round(y), "width": 1, "height": 1})
    pos, idat, depth, colour_type = 8, b"", None, None
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            depth, colour_type = body[8], body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)  # 8-bit RGB or RGBA
    return tuple(zlib.decompress(idat)[1:4])


def _css_rgb(text: str) -> tuple[int, int, int]:
    """'rgb(1, 2, 3)' or '#010203' as a tuple."""
    if text.startswith("#"):
        return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in text[text.index("(") + 1:text.index(")")].split(",")[:3])


def _near(actual, expected, tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


# Pixels of the aircraft canvas (not transparent) within `radius` px of an aircraft: its icon's drawn area.
# The radius stays clear of the callsign label, drawn from 13 px to the right of the aircraft.
_ICON_AREA = """([icao24, radius]) => {
  const p = flightMap.containerPointOf(icao24);
  const canvas = document.querySelector(".aircraft-canvas");
  const map = flightMap.map.getContainer().getBoundingClientRect();
  const box = canvas.getBoundingClientRect();
  const x = Math.round(p.x + map.left - box.left - radius), y = Math.round(p.y + map.top - box.top - radius);
  const data = canvas.getContext("2d").getImageData(x, y, 2 * radius + 1, 2 * radius + 1).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}"""


def test_map_shows_every_aircraft_and_a_click_shows_details_and_trail(chromium, tracker):
    from playwright.sync_api import expect

    # GIVEN the tracker has the synthetic fleet live and its positions in PostgreSQL
    flights = _get(f"{tracker.url}/flights")
    assert flights["count"] == AIRCRAFT
    # an airborne aircraft listed in the table (first 150 by callsign) with no other within 0.2 degrees
    def alone(f):
        return all(abs(o["latitude"] - f["latitude"]) + abs(o["longitude"] - f["longitude"]) > 0.2
                   for o in flights["flights"] if o["icao24"] != f["icao24"])
    target = next(f for f in sorted(flights["flights"], key=lambda f: (f["callsign"] or "").strip())
                  if not f["on_ground"] and f["callsign"] and alone(f))
    track = _get(f"{tracker.url}/flights/{target['icao24']}/track")

    # WHEN a person opens the map (a shared link centred on one aircraft)
    page, errors = open_page(chromium, f"{tracker.url}/?lat={target['latitude']}&lon={target['longitude']}&z=9&base=plain")
    try:
        # THEN the aircraft counter appears and equals what GET /flights reports
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(flights["count"]), timeout=15000)
        assert _counter(page, "Airborne") == sum(1 for f in flights["flights"] if not f["on_ground"])
        expect(page.get_by_text("Connected", exact=True)).to_be_visible()

        # WHEN they click the aircraft in the middle of the map
        page.get_by_role("application", name="Map of aircraft").click()

        # THEN its details and its trail from the history are shown
        details = page.get_by_role("region", name="Aircraft details")
        expect(details).to_be_visible()
        expect(details).to_contain_text(target["callsign"].strip())
        expect(details).to_contain_text(target["origin_country"])
        expect(details).to_contain_text(f"Trail: {len(track['points'])} positions since")
        assert len(track["points"]) == TICKS  # its own schema: exactly the positions produced
        assert f"sel={target['icao24']}" in page.url  # the selection is part of the shareable URL

        # WHEN they pick another aircraft from the table beside the map
        # (the table lists the first 150 by callsign: take the first one listed)
        other = min((f for f in flights["flights"] if f["callsign"] and f["icao24"] != target["icao24"]),
                    key=lambda f: f["callsign"].strip())
        page.get_by_role("row").filter(has_text=other["icao24"]).click()
        # THEN the details follow
        expect(details).to_contain_text(other["callsign"].strip())

        # WHEN they type a callsign in the filter
        page.get_by_label("Filter").fill(target["callsign"].strip())
        # THEN only matching aircraft are counted, and the filter is in the URL to share
        expect(page.get_by_label("Aircraft shown")).to_have_text("1")
        assert "q=" + target["callsign"].strip() in page.url
        page.get_by_label("Filter").fill("")
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(flights["count"]))

        # The README's screenshot: the aircraft selected, zoomed out to see the traffic around it.
        page.get_by_role("row").filter(has_text=target["icao24"]).click()
        expect(details).to_contain_text(f"Trail: {len(track['points'])} positions since")
        for _ in range(6):
            page.get_by_role("button", name="Zoom out").click()
            page.wait_for_timeout(300)
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(flights["count"]))
        page.wait_for_timeout(500)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
            page.screenshot(path=str(DOCS_SCREENSHOT))
        assert errors == []
    finally:
        page.close()


def test_offline_map_draws_the_land_and_small_icons_at_world_zoom(chromium, tracker):
    from playwright.sync_api import expect

    # GIVEN the tracker with its fleet, and the land outlines `make setup` fetched (Natural Earth countries)
    land = _get(f"{tracker.url}/vendor/world-atlas/countries-110m.geojson")
    flights = _get(f"{tracker.url}/flights")["flights"]
    one = next(f for f in sorted(flights, key=lambda f: f["icao24"]) if not f["on_ground"] and f["callsign"])

    # WHEN a person opens the map offline at world zoom, centred on that aircraft
    page, errors = open_page(chromium, f"{tracker.url}/?lat={one['latitude']}&lon={one['longitude']}&z=2&base=plain")
    try:
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(len(flights)), timeout=15000)
        # THEN every country is drawn, from the tracker itself (no request leaves the machine)
        expect(page.locator(".leaflet-land-pane path")).to_have_count(len(land["features"]), timeout=10000)
        assert len(land["features"]) > 150

        # and a person sees land where there is land: inland Chad in the land colour, the South Atlantic
        # in the sea's. (The aircraft are filtered away first, so none sits on the points looked at.)
        page.get_by_label("Filter").fill("no-such-aircraft")
        expect(page.get_by_label("Aircraft shown")).to_have_text("0")
        page.wait_for_timeout(300)  # the canvas redraws on the next animation frame
        land_fill = _css_rgb(page.locator(".leaflet-land-pane path").first.get_attribute("fill"))
        sea = _css_rgb(page.get_by_role("application", name="Map of aircraft").evaluate(
            "el => getComputedStyle(el).backgroundColor"))
        assert not _near(land_fill, sea, 10), (land_fill, sea)  # two colours a person can tell apart
        for (lat, lon), expected in (((15, 19), land_fill), ((-15, -20), sea)):
            x, y = page.evaluate("""([lat, lon]) => {
                const p = flightMap.map.latLngToContainerPoint([lat, lon]);
                const r = flightMap.map.getContainer().getBoundingClientRect();
                return [p.x + r.left, p.y + r.top]; }""", [lat, lon])
            assert _near(_pixel(page, x, y), expected), (lat, lon, _pixel(page, x, y), expected)

        # WHEN they look at one aircraft at world zoom, then zoom in to a region (zoom 8)
        page.get_by_label("Filter").fill(one["callsign"].strip())
        expect(page.get_by_label("Aircraft shown")).to_have_text("1")
        page.wait_for_timeout(300)
        world = page.evaluate(_ICON_AREA, [one["icao24"], 11])
        for _ in range(6):
            page.get_by_role("button", name="Zoom in").click()
            page.wait_for_timeout(400)
        assert page.evaluate("flightMap.map.getZoom()") == 8
        page.wait_for_timeout(300)
        region = page.evaluate(_ICON_AREA, [one["icao24"], 11])
        # THEN its icon is there at world zoom but much smaller: less than half the area it has up close
        assert 0 < world < region / 2, (world, region)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("map-zoom8.png")))
        assert errors == []
    finally:
        page.close()


def test_lost_connection_shows_a_banner_and_the_page_reconnects_by_itself(chromium, tracker):
    from playwright.sync_api import expect

    # GIVEN the map open through a network path that can fail
    proxy = TcpProxy(int(tracker.url.rsplit(":", 1)[1]))
    page, errors = open_page(chromium, f"http://127.0.0.1:{proxy.port}/")
    try:
        count = _get(f"{tracker.url}/flights")["count"]
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(count), timeout=15000)
        banner = page.get_by_role("alert")
        expect(banner).to_be_hidden()
        # (the tiles cannot be loaded here: the page says so and falls back to its plain background)
        expect(page.get_by_text("Map tiles could not be loaded: plain background instead.")).to_be_visible()

        # WHEN the connection to the tracker is lost
        proxy.cut()
        # THEN the page says so
        expect(banner).to_be_visible(timeout=5000)
        expect(banner).to_contain_text("Connection to the tracker lost")
        expect(page.get_by_text("Disconnected", exact=True)).to_be_visible()
        page.wait_for_timeout(2000)  # a few failed attempts while the network is gone
        expect(banner).to_be_visible()

        # WHEN the network comes back
        proxy.listen()
        # THEN the page reconnects without a reload: banner gone, aircraft all there again
        expect(banner).to_be_hidden(timeout=15000)
        expect(page.get_by_text("Connected", exact=True)).to_be_visible()
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(count))
        assert errors == []
    finally:
        page.close()
        proxy.close()


def test_stats_page_draws_the_hourly_analytics_from_postgresql(chromium, tracker):
    from playwright.sync_api import expect

    # GIVEN positions stored by the tracker, and the hourly analytics the API serves from the views
    hourly = _get(f"{tracker.url}/analytics/hourly?hours=6")
    top_airline = max(hourly["by_airline"], key=lambda r: r["flights"])["name"]
    countries_now = _get(f"{tracker.url}/stats")["by_country"]
    # WHEN a person opens the stats page
    page, errors = open_page(chromium, f"{tracker.url}/stats.html?hours=6")
    try:
        # THEN each chart is drawn, with the names from the data, and no error is shown
        for name in ("Aircraft now by altitude band", "Aircraft per hour by country", "Top airlines by aircraft-hours",
                     "Aircraft per hour by altitude band"):
            expect(page.get_by_role("img", name=name)).to_be_visible(timeout=10000)
        expect(page.get_by_role("img", name="Top airlines by aircraft-hours")).to_contain_text(top_airline)
        expect(page.get_by_role("img", name="Aircraft now by country")).to_contain_text(next(iter(countries_now)))
        expect(page.get_by_text("analytics refreshed")).to_be_visible()
        expect(page.get_by_role("alert")).to_be_hidden()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("stats.png")), full_page=True)
        assert errors == []
    finally:
        page.close()


def test_paused_map_holds_still_and_catches_up_when_live_again(chromium, tracker):
    from playwright.sync_api import expect

    # GIVEN the map showing every aircraft the tracker has
    before = _get(f"{tracker.url}/flights")["count"]
    page, errors = open_page(chromium, f"{tracker.url}/")
    try:
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(before), timeout=15000)
        # WHEN the person pauses it and a new aircraft is heard
        page.get_by_role("switch", name="Live").click()
        expect(page.get_by_role("switch", name="Paused")).to_have_attribute("aria-checked", "false")
        produce(tracker.bootstrap, tracker.topic, [state(1, 0, time.time())])
        wait_until(lambda: _get(f"{tracker.url}/flights")["count"] == before + 1, 30, "the tracker to hear it")
        page.wait_for_timeout(2500)  # more than two WebSocket update intervals
        # THEN the paused map still shows the old picture
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(before))
        # WHEN it is switched back to live THEN the new aircraft appears at once
        page.get_by_role("switch", name="Paused").click()
        expect(page.get_by_label("Aircraft shown")).to_have_text(str(before + 1), timeout=2000)
        page.get_by_label("Filter").fill("TST0001")
        expect(page.get_by_role("row").filter(has_text="TST0001")).to_be_visible()
        assert errors == []
    finally:
        page.close()
