// The pure parts of the map's geofences and alerts (src/tracker/web/js/alerts.js), run by node --test.
import assert from "node:assert/strict";
import { test } from "node:test";

import { alertKind, alertTitle, fenceLabel, mergeAlerts } from "../../../src/tracker/web/js/alerts.js";

const alert = (over = {}) => ({ alert_id: "abc123:100:GEOFENCE_ENTER:Box", alert_type: "GEOFENCE_ENTER",
  icao24: "abc123", callsign: "DLH4AB", geofence: "Box", time_position: "2026-12-01T10:00:00Z", ...over });

test("GIVEN each alert kind THEN its title says what happened", () => {
  assert.equal(alertTitle(alert()), "Entered Box");
  assert.equal(alertTitle(alert({ alert_type: "GEOFENCE_EXIT" })), "Left Box");
  assert.equal(alertTitle(alert({ alert_type: "EMERGENCY", squawk: "7600", emergency: "radio failure" })),
    "Squawk 7600: radio failure");
  assert.equal(alertTitle(alert({ alert_type: "WATCHLIST", watch: "callsign=QFA*" })), "Watchlist: callsign=QFA*");
  assert.equal(alertKind(alert({ alert_type: "EMERGENCY" })), "emergency");
  assert.equal(alertKind(alert({ alert_type: "SOMETHING_NEW" })), "other");
});

test("GIVEN fences with and without limits THEN the label gives the name and the altitudes", () => {
  assert.equal(fenceLabel({ name: "Heathrow CTR", floor_ft: null, ceiling_ft: 2500 }), "Heathrow CTR · surface – 2,500 ft");
  assert.equal(fenceLabel({ name: "High", floor_ft: 24500, ceiling_ft: null }), "High · 24,500 ft – unlimited");
  assert.equal(fenceLabel({ name: "All", floor_ft: null, ceiling_ft: null }), "All · all altitudes");
  assert.equal(fenceLabel({ name: "Zero", floor_ft: 0, ceiling_ft: 1000 }), "Zero · surface – 1,000 ft");
});

test("GIVEN alerts arriving twice and out of order THEN the list has each once, newest first, bounded", () => {
  const a = alert();
  const b = alert({ alert_id: "b", time_position: "2026-12-01T10:05:00Z" });
  const c = alert({ alert_id: "c", time_position: "2026-12-01T09:55:00Z" });
  assert.deepEqual(mergeAlerts([a], [b, a, c]).map((x) => x.alert_id), ["b", a.alert_id, "c"]);
  assert.deepEqual(mergeAlerts([a, c], [b], 2).map((x) => x.alert_id), ["b", a.alert_id]);
});
