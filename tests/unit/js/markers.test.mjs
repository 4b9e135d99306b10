// The pure parts of the map's aircraft icons (src/tracker/web/js/markers.js), run by node --test.
import assert from "node:assert/strict";
import { test } from "node:test";

// markers.js defines its canvas layer from the page's Leaflet global when it loads; here only its pure
// functions are tested, so a stand-in for L.Layer.extend is enough to import it.
globalThis.window = { L: { Layer: { extend: (proto) => proto } } };
const { ICON_FULL_ZOOM, ICON_MIN_ZOOM, ICON_SCALE_MIN, iconScaleForZoom, shapeFor } =
  await import("../../../src/tracker/web/js/markers.js");

const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);

test("GIVEN world zoom THEN icons are drawn at the minimum scale, and no smaller further out", () => {
  close(iconScaleForZoom(ICON_MIN_ZOOM), ICON_SCALE_MIN);
  close(iconScaleForZoom(1), ICON_SCALE_MIN);
  close(iconScaleForZoom(0), ICON_SCALE_MIN);
  // a jet (28 px wide at full size) stays at least 8 px: shape and heading still visible
  assert.ok(28 * iconScaleForZoom(0) >= 8);
});

test("GIVEN a regional zoom or closer THEN icons are full size, and never larger", () => {
  close(iconScaleForZoom(ICON_FULL_ZOOM), 1);
  close(iconScaleForZoom(12), 1);
  close(iconScaleForZoom(19), 1);
});

test("GIVEN zooming in step by step THEN the icons grow monotonically between the two ends", () => {
  const scales = [];
  for (let z = ICON_MIN_ZOOM; z <= ICON_FULL_ZOOM; z++) scales.push(iconScaleForZoom(z));
  for (let i = 1; i < scales.length; i++) assert.ok(scales[i] > scales[i - 1], `zoom ${ICON_MIN_ZOOM + i}: ${scales}`);
  // zoom 2 (the world) against zoom 8 (a region): under half the width, so ~1/8 of the area
  assert.ok(iconScaleForZoom(2) < iconScaleForZoom(8) / 2);
});

test("GIVEN fractional zooms (pinch, fitBounds) THEN scales come in 0.05 steps: a bounded set of sprites", () => {
  const seen = new Set();
  for (let z = 0; z <= 10; z += 0.01) {
    const s = iconScaleForZoom(z);
    close(Math.round(s * 20) / 20, s);
    seen.add(s.toFixed(3));
  }
  // every step from the minimum to full size, and nothing in between
  assert.equal(seen.size, Math.round((1 - ICON_SCALE_MIN) / 0.05) + 1, [...seen].join(" "));
});

test("GIVEN no zoom yet (NaN, undefined) THEN full size rather than an invisible icon", () => {
  close(iconScaleForZoom(NaN), 1);
  close(iconScaleForZoom(undefined), 1);
});

test("GIVEN an emitter category THEN its shape, and an unknown category gets the generic arrow", () => {
  assert.deepEqual(shapeFor(4), ["jet", 1.0]);
  assert.deepEqual(shapeFor(8), ["rotorcraft", 0.9]);
  assert.deepEqual(shapeFor(99), ["unknown", 0.85]);
  assert.deepEqual(shapeFor(null), ["unknown", 0.85]);
});
