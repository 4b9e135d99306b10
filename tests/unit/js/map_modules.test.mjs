// Pure modules of the map page (src/tracker/web/js/), run by `node --test` from tests/unit/test_map_js.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AircraftStore, countAircraft, matchesFilter, parseFilter, TRAIL_MAX_POINTS } from "../../../src/tracker/web/js/aircraft.js";
import { pivotHourly, niceMax } from "../../../src/tracker/web/js/charts.js";
import {
  altitudeBand, altitudeColour, altitudeHue, callsignLabel, formatAge, formatAltitude, formatRate, formatSpeed,
  formatTrack, formatVerticalRate, squawkLabel,
} from "../../../src/tracker/web/js/formatter.js";
import { backoffDelay, flightsSocketUrl, BACKOFF_MAX_MS } from "../../../src/tracker/web/js/live.js";

const flight = (over = {}) => ({ icao24: "3c6444", callsign: "DLH4AB  ", origin_country: "Germany",
  time_position: "2026-12-01T10:00:00Z", last_contact: "2026-12-01T10:00:01Z", latitude: 50, longitude: 8,
  altitude_feet: 35000, velocity_knots: 450, true_track: 90, vertical_rate_fpm: 0, on_ground: false,
  squawk: "1000", category: 4, ...over });

test("GIVEN altitudes WHEN formatted THEN feet with separators, ground and unknown say so", () => {
  assert.equal(formatAltitude(35000), "35,000 ft");
  assert.equal(formatAltitude(-150), "-150 ft");
  assert.equal(formatAltitude(1200, true), "ground");
  assert.equal(formatAltitude(null), "\u2013");
});

test("GIVEN speeds, tracks and vertical rates THEN units and compass points", () => {
  assert.equal(formatSpeed(449.6), "450 kt");
  assert.equal(formatSpeed(undefined), "\u2013");
  assert.equal(formatTrack(359.7), "0\u00b0 N");
  assert.equal(formatTrack(-90), "270\u00b0 W");
  assert.equal(formatVerticalRate(20), "level");
  assert.equal(formatVerticalRate(-1500), "\u2193 1,472 ft/min");
  assert.equal(formatRate(1234.4), "1,234/s");
  assert.equal(formatRate(2.25), "2.3/s");
});

test("GIVEN a padded or blank callsign THEN the label is trimmed or falls back to the icao24", () => {
  assert.equal(callsignLabel(flight()), "DLH4AB");
  assert.equal(callsignLabel(flight({ callsign: "   " })), "3C6444");
  assert.equal(callsignLabel(flight({ callsign: null })), "3C6444");
});

test("GIVEN emergency squawks THEN their meaning is shown", () => {
  assert.equal(squawkLabel("7700"), "7700 (emergency)");
  assert.equal(squawkLabel(null), "\u2013");
});

test("GIVEN ages THEN seconds, minutes, hours", () => {
  const now = Date.parse("2026-12-01T10:00:30Z");
  assert.equal(formatAge("2026-12-01T10:00:00Z", now), "30 s ago");
  assert.equal(formatAge("2026-12-01T09:50:00Z", now), "11 min ago");
  assert.equal(formatAge(null, now), "\u2013");
});

test("GIVEN the altitude scale THEN it rises monotonically, is clamped, and ground/unknown are grey", () => {
  let last = -1;
  for (let ft = -1000; ft <= 50000; ft += 500) {
    const hue = altitudeHue(ft);
    assert.ok(hue >= last, `hue falls at ${ft} ft`);
    last = hue;
  }
  assert.equal(altitudeHue(60000), altitudeHue(40000));
  assert.equal(altitudeColour(0, true), "hsl(0, 0%, 55%)");
  assert.equal(altitudeColour(null), "hsl(0, 0%, 35%)");
});

test("GIVEN altitudes on band edges THEN the bands of GET /stats", () => {
  assert.equal(altitudeBand(39999, false), "30-40k");
  assert.equal(altitudeBand(40000, false), "40k+");
  assert.equal(altitudeBand(-100, false), "0-10k");
  assert.equal(altitudeBand(30000, true), "ground");
});

test("GIVEN a filter THEN it matches callsign prefix, icao24 prefix or part of the country, any case", () => {
  assert.ok(matchesFilter(flight(), parseFilter(" dlh ")));
  assert.ok(matchesFilter(flight(), parseFilter("3C6")));
  assert.ok(matchesFilter(flight(), parseFilter("germ")));
  assert.ok(!matchesFilter(flight(), parseFilter("4AB")));
  assert.ok(matchesFilter(flight({ callsign: null, origin_country: null }), parseFilter("")));
});

test("GIVEN a snapshot then an update THEN the store holds the changed aircraft and drops the removed", () => {
  const store = new AircraftStore();
  store.applySnapshot([flight(), flight({ icao24: "4ca123", callsign: "RYR1", on_ground: true })]);
  store.applyUpdate([flight({ icao24: "a00001", callsign: "N1" })], ["4ca123"]);
  assert.deepEqual([...store.byId.keys()].sort(), ["3c6444", "a00001"]);
  assert.deepEqual(countAircraft(store.filtered("")), { shown: 2, airborne: 2 });
  // A new snapshot (after a reconnect) is the whole picture.
  store.applySnapshot([flight({ icao24: "4ca123", on_ground: true })]);
  assert.deepEqual(countAircraft(store.filtered("")), { shown: 1, airborne: 0 });
});

test("GIVEN a selected aircraft with a trail THEN live positions extend it, once each, bounded", () => {
  const store = new AircraftStore();
  store.applySnapshot([flight()]);
  const a = store.get("3c6444");
  a.setTrail([{ time: "2026-12-01T09:59:00Z", latitude: 49.9, longitude: 7.9, altitude_feet: 34000, on_ground: false }]);
  assert.equal(a.trail.length, 2); // history + the current position
  store.applyUpdate([flight({ time_position: "2026-12-01T10:00:10Z", latitude: 50.1 })], []);
  store.applyUpdate([flight({ time_position: "2026-12-01T10:00:10Z", latitude: 50.1 })], []);
  assert.equal(a.trail.length, 3);
  for (let i = 0; i < TRAIL_MAX_POINTS + 10; i++) {
    a.update(flight({ time_position: new Date(Date.parse("2026-12-01T11:00:00Z") + i * 1000).toISOString() }));
  }
  assert.equal(a.trail.length, TRAIL_MAX_POINTS);
});

test("GIVEN reconnect attempts THEN the delay doubles from 0.5 s, is capped at 10 s, jitter within 25%", () => {
  assert.equal(backoffDelay(0, () => 0.5), 500);
  assert.equal(backoffDelay(3, () => 0.5), 4000);
  assert.equal(backoffDelay(50, () => 0.5), BACKOFF_MAX_MS);
  assert.equal(backoffDelay(50, () => 0.999999), Math.round(BACKOFF_MAX_MS * 1.25));
  assert.equal(backoffDelay(0, () => 0), 375);
});

test("GIVEN the page location THEN the WebSocket URL follows its scheme and host", () => {
  assert.equal(flightsSocketUrl({ protocol: "http:", host: "127.0.0.1:8000" }, null), "ws://127.0.0.1:8000/ws/flights");
  assert.equal(flightsSocketUrl({ protocol: "https:", host: "t.example" }, [1, 2, 3, 4]),
    "wss://t.example/ws/flights?bbox=1.0000,2.0000,3.0000,4.0000");
});

test("GIVEN hourly rows THEN pivot ranks names by aircraft-hours and fills missing hours with 0", () => {
  const rows = [
    { hour: "2026-12-01T08:00:00Z", name: "DLH", flights: 5 },
    { hour: "2026-12-01T10:00:00Z", name: "DLH", flights: 7 },
    { hour: "2026-12-01T10:00:00Z", name: "RYR", flights: 20 },
    { hour: "2026-12-01T10:00:00Z", name: "BAW", flights: 1 },
  ];
  const { hours, series } = pivotHourly(rows, { top: 2, keepOther: true });
  assert.deepEqual(hours, ["2026-12-01T08:00:00.000Z", "2026-12-01T09:00:00.000Z", "2026-12-01T10:00:00.000Z"]);
  assert.deepEqual(series.map((s) => [s.name, s.values, s.total]),
    [["RYR", [0, 0, 20], 20], ["DLH", [5, 0, 7], 12], ["Other", [0, 0, 1], 1]]);
  assert.deepEqual(pivotHourly([]), { hours: [], series: [] });
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(17), 20);
  assert.equal(niceMax(240), 250);
});
