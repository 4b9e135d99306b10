// Geofences and alerts on the map: the fences flight-alerts uses (GET /geofences, polled with its ETag)
// as a Leaflet GeoJSON overlay, and the latest alerts (GET /alerts, then pushed on /ws/flights as
// {"type": "alert", "alert": {...}}) in a list beside the map, each flashing its aircraft and fence.
import { callsignLabel, formatAltitude, formatClock, formatCount } from "./formatter.js";

export const FENCES_POLL_MS = 60000;
export const ALERTS_SHOWN = 20;
export const FLASH_MS = 8000;

const KIND = {
  GEOFENCE_ENTER: "enter",
  GEOFENCE_EXIT: "exit",
  EMERGENCY: "emergency",
  WATCHLIST: "watch",
};

// ------------------------------------------------------------------ pure parts (unit-tested with Node)

// What happened, in words: "Entered Heathrow CTR", "Squawk 7700: general emergency".
export function alertTitle(alert) {
  switch (alert.alert_type) {
    case "GEOFENCE_ENTER": return `Entered ${alert.geofence}`;
    case "GEOFENCE_EXIT": return `Left ${alert.geofence}`;
    case "EMERGENCY": return `Squawk ${alert.squawk}: ${alert.emergency || "emergency"}`;
    case "WATCHLIST": return `Watchlist: ${alert.watch || callsignLabel(alert)}`;
    default: return alert.alert_type || "Alert";
  }
}

export function alertKind(alert) {
  return KIND[alert.alert_type] || "other";
}

// "Heathrow CTR · surface – 2,500 ft"; a fence without limits is "all altitudes".
export function fenceLabel(properties) {
  const floor = properties.floor_ft;
  const ceiling = properties.ceiling_ft;
  const known = (v) => v !== null && v !== undefined;
  let limits = "all altitudes";
  if (known(floor) || known(ceiling)) {
    limits = `${known(floor) && floor > 0 ? formatAltitude(floor) : "surface"} – ${known(ceiling) ? formatAltitude(ceiling) : "unlimited"}`;
  }
  return `${properties.name} · ${limits}`;
}

// The list kept on the page: newest first (by position time, then arrival), each alert_id once, at most `max`.
export function mergeAlerts(current, incoming, max = ALERTS_SHOWN) {
  const byId = new Map();
  for (const a of [...incoming, ...current]) if (!byId.has(a.alert_id)) byId.set(a.alert_id, a);
  return [...byId.values()]
    .sort((x, y) => (Date.parse(y.time_position) || 0) - (Date.parse(x.time_position) || 0))
    .slice(0, max);
}

// ------------------------------------------------------------------ the fences overlay

export class FencesOverlay {
  constructor(onStatus) {
    const L = window.L;
    this.onStatus = onStatus;
    this.etag = null;
    this.byName = new Map();
    // SVG, not the page's canvas: a few shapes only, each a DOM element the flash can animate.
    this.layer = L.geoJSON(null, {
      renderer: L.svg({ padding: 0.5 }),
      style: () => ({ className: "fence", color: "#7b3fa0", weight: 2, fillOpacity: 0.08, dashArray: "6 4" }),
      onEachFeature: (feature, layer) => {
        const label = fenceLabel(feature.properties);
        layer.bindTooltip(label, { sticky: true });
        this.byName.set(feature.properties.name, layer);
        layer.on("add", () => {
          const el = layer.getElement();
          if (el) { el.setAttribute("role", "img"); el.setAttribute("aria-label", `Geofence ${label}`); }
        });
      },
    });
  }

  async refresh() {
    try {
      const resp = await fetch("/geofences", {
        cache: "no-store", headers: this.etag ? { "If-None-Match": this.etag } : {},
      });
      if (resp.status === 304) return;
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.detail || `HTTP ${resp.status}`);
      this.etag = resp.headers.get("ETag");
      this.byName.clear();
      this.layer.clearLayers();
      this.layer.addData(body.features);
      this.onStatus(body.features.length
        ? `${formatCount(body.features.length)} geofence${body.features.length === 1 ? "" : "s"} drawn.`
        : "No geofences defined (make geofences FILE=...).");
    } catch (err) {
      // The API's detail already starts with "geofences unavailable: ..."; a network error does not.
      const text = err.message || String(err);
      this.onStatus(/^geofences/i.test(text) ? text[0].toUpperCase() + text.slice(1) : `Geofences unavailable: ${text}`);
    }
  }

  poll() {
    this.refresh();
    setInterval(() => this.refresh(), FENCES_POLL_MS);
  }

  flash(name) {
    const layer = this.byName.get(name);
    const el = layer && layer.getElement && layer.getElement();
    if (!el) return;
    el.classList.remove("fence-flash");
    void el.getBoundingClientRect(); // restart the animation
    el.classList.add("fence-flash");
    setTimeout(() => el.classList.remove("fence-flash"), FLASH_MS);
  }
}

// ------------------------------------------------------------------ the alerts list and the flashes

export class AlertsPanel {
  // onPick(icao24): the person clicked an alert (the page selects that aircraft).
  constructor(map, fences, onPick) {
    const L = window.L;
    this.map = map;
    this.fences = fences;
    this.onPick = onPick;
    this.alerts = [];
    this.flashes = L.layerGroup().addTo(map);
    this.section = document.createElement("section");
    this.section.className = "alerts";
    this.section.setAttribute("aria-labelledby", "alerts-title");
    this.section.innerHTML = `<h2 id="alerts-title">Alerts</h2>
      <p id="fences-status" class="caption"></p>
      <p id="alerts-status" class="caption">Loading alerts…</p>
      <ol id="alerts-list" class="alerts-list" aria-label="Recent alerts"></ol>`;
    const side = document.querySelector(".side");
    side.insertBefore(this.section, side.querySelector(".list"));
    this.list = this.section.querySelector("#alerts-list");
    this.list.addEventListener("click", (e) => this._pick(e.target.closest("li")));
    this.list.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this._pick(e.target.closest("li")); }
    });
  }

  setFencesStatus(text) {
    this.section.querySelector("#fences-status").textContent = text;
  }

  // After (re)connecting: whatever arrived while the page was away.
  async load() {
    const status = this.section.querySelector("#alerts-status");
    try {
      const resp = await fetch(`/alerts?limit=${ALERTS_SHOWN}`, { cache: "no-store" });
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.detail || `HTTP ${resp.status}`);
      const feed = body.feed || {};
      status.textContent = feed.ok ? "" : `Alerts feed unavailable: ${feed.error || "not connected"}`;
      this.alerts = mergeAlerts(this.alerts, body.alerts || []);
      this.render();
    } catch (err) {
      status.textContent = `Alerts unavailable: ${err.message}`;
    }
  }

  // One alert pushed on the WebSocket: listed, and its aircraft and fence flash.
  add(alert) {
    const known = this.alerts.some((a) => a.alert_id === alert.alert_id);
    this.alerts = mergeAlerts(this.alerts, [alert]);
    this.section.querySelector("#alerts-status").textContent = "";
    this.render();
    if (!known) this.flash(alert);
  }

  flash(alert) {
    const L = window.L;
    if (alert.geofence) this.fences.flash(alert.geofence);
    if (alert.latitude === null || alert.latitude === undefined || alert.longitude === null) return;
    const marker = L.marker([alert.latitude, alert.longitude], {
      // Leaflet positions the icon with a transform: the ring inside it is what pulses.
      icon: L.divIcon({ className: `alert-flash alert-${alertKind(alert)}`, iconSize: [40, 40],
                        html: '<span class="alert-ring"></span>' }),
      interactive: false, keyboard: false,
    }).addTo(this.flashes);
    setTimeout(() => this.flashes.removeLayer(marker), FLASH_MS);
  }

  render() {
    const items = document.createDocumentFragment();
    for (const a of this.alerts) {
      const li = document.createElement("li");
      li.className = `alert-item alert-${alertKind(a)}`;
      li.dataset.alertId = a.alert_id;
      li.tabIndex = 0;
      const title = document.createElement("strong");
      title.textContent = alertTitle(a);
      const detail = document.createElement("span");
      detail.className = "alert-detail";
      detail.textContent = `${callsignLabel(a)} · ${formatAltitude(a.altitude_feet)} · ${formatClock(a.time_position)}`;
      li.append(title, detail);
      items.appendChild(li);
    }
    this.list.replaceChildren(items);
  }

  _pick(li) {
    if (!li) return;
    const alert = this.alerts.find((a) => a.alert_id === li.dataset.alertId);
    if (!alert) return;
    if (alert.latitude !== null && alert.latitude !== undefined) this.map.panTo([alert.latitude, alert.longitude]);
    this.flash(alert);
    this.onPick(alert.icao24);
  }
}
