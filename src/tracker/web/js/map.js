// The live map page: wires the live connection, the aircraft store, the canvas layer, the base maps,
// the filter (kept in the URL so a view can be shared), the counters, the table and the details panel.
import { AircraftStore, countAircraft, parseFilter } from "./aircraft.js";
import { AlertsPanel, FencesOverlay } from "./alerts.js";
import {
  altitudeColour, altitudeHue, callsignLabel, categoryName, formatAge, formatAltitude, formatClock,
  formatCount, formatPosition, formatRate, formatSpeed, formatTrack, formatVerticalRate, legendLabel,
  LEGEND_STOPS, squawkLabel,
} from "./formatter.js";
import { installBaseLayers } from "./layers.js";
import { flightsSocketUrl, LiveConnection } from "./live.js";
import { AircraftLayer } from "./markers.js";

const L = window.L;
const TABLE_MAX_ROWS = 150;
const STATS_POLL_MS = 2000;
const TRACK_LIMIT = 1000;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ URL state (shareable views)
const params = new URLSearchParams(location.search);
const urlState = {
  q: params.get("q") || "",
  sel: params.get("sel") || null,
  lat: parseFloat(params.get("lat")),
  lon: parseFloat(params.get("lon")),
  z: parseInt(params.get("z"), 10),
  base: params.get("base") || "",
};

function writeUrl() {
  const p = new URLSearchParams();
  if (urlState.q) p.set("q", urlState.q);
  if (urlState.sel) p.set("sel", urlState.sel);
  const c = map.getCenter();
  p.set("lat", c.lat.toFixed(4));
  p.set("lon", c.lng.toFixed(4));
  p.set("z", String(map.getZoom()));
  if (urlState.base) p.set("base", urlState.base);
  history.replaceState(null, "", `${location.pathname}?${p}`);
}

// ------------------------------------------------------------------ map
const hasView = Number.isFinite(urlState.lat) && Number.isFinite(urlState.lon);
const map = L.map("map", {
  center: hasView ? [urlState.lat, urlState.lon] : [30, 0],
  zoom: Number.isFinite(urlState.z) ? urlState.z : 2,
  worldCopyJump: true,
  preferCanvas: true,
});
const trailRenderer = L.canvas({ padding: 0.5 });
// The banner and notices above the map change its height: keep the centre where it was.
new ResizeObserver(() => map.invalidateSize()).observe(map.getContainer());
const fences = new FencesOverlay((text) => alertsPanel.setFencesStatus(text));
fences.layer.addTo(map);
installBaseLayers(map, urlState.base, showNotice, { "Geofences": fences.layer });
map.on("baselayerchange", (e) => {
  map.getContainer().classList.toggle("plain", !e.layer.getTileUrl);
});
addLegend(map);

const aircraftLayer = new AircraftLayer().addTo(map);
aircraftLayer.on("aircraftclick", (e) => select(e.aircraft ? e.aircraft.icao24 : null));
const alertsPanel = new AlertsPanel(map, fences, (icao24) => select(icao24, { pan: true }));
fences.poll();
map.on("moveend", writeUrl);

function addLegend(m) {
  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    const stops = [];
    for (let ft = 0; ft <= 40000; ft += 2500) stops.push(`hsl(${altitudeHue(ft)}, 85%, 45%) ${(ft / 40000) * 100}%`);
    div.innerHTML = `<div><strong>Altitude</strong></div>
      <div class="bar" style="background: linear-gradient(to right, ${stops.join(", ")})"></div>
      <div class="ticks">${LEGEND_STOPS.map((ft) => `<span>${legendLabel(ft)}</span>`).join("")}</div>
      <div class="ground"><span class="swatch" style="background:${altitudeColour(0, true)}"></span>on the ground</div>`;
    return div;
  };
  legend.addTo(m);
}

function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = false;
}

// ------------------------------------------------------------------ state
const store = new AircraftStore();
let filter = parseFilter(urlState.q);
let selected = null;
let live = true;
let fittedOnce = hasView;
// While paused, incoming messages are folded into one pending snapshot + changes (bounded by the
// number of aircraft, never by time), applied when the person switches back to live.
let pending = { snapshot: null, changed: new Map(), removed: new Set() };

const filterInput = $("filter");
filterInput.value = urlState.q;
let filterTimer = null;
filterInput.addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    urlState.q = filterInput.value.trim();
    filter = parseFilter(urlState.q);
    writeUrl();
    render();
  }, 150);
});

const liveSwitch = $("live-switch");
liveSwitch.addEventListener("click", () => {
  live = !live;
  liveSwitch.setAttribute("aria-checked", String(live));
  liveSwitch.textContent = live ? "Live" : "Paused";
  if (live) {
    if (pending.snapshot) store.applySnapshot(pending.snapshot);
    store.applyUpdate([...pending.changed.values()], [...pending.removed]);
    pending = { snapshot: null, changed: new Map(), removed: new Set() };
    render();
  }
});

$("details-close").addEventListener("click", () => select(null));

// ------------------------------------------------------------------ rendering
let lastTableRender = 0;
let tableTimer = null;

function render() {
  const now = Date.now();
  const shown = store.filtered(filter);
  aircraftLayer.setAircraft(shown, now);
  const counts = countAircraft(shown);
  $("count-shown").textContent = formatCount(counts.shown);
  $("count-airborne").textContent = formatCount(counts.airborne);
  // The table is the costliest DOM work: at most once a second.
  const wait = 1000 - (now - lastTableRender);
  if (wait <= 0) renderTable(shown, now);
  else if (!tableTimer) tableTimer = setTimeout(() => { tableTimer = null; render(); }, wait);
  renderDetails(now);
}

function renderTable(shown, now) {
  lastTableRender = now;
  const rows = shown
    .map((a) => [callsignLabel(a.flight), a])
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    .slice(0, TABLE_MAX_ROWS);
  const body = document.createDocumentFragment();
  for (const [label, a] of rows) {
    const f = a.flight;
    const tr = document.createElement("tr");
    tr.dataset.icao24 = a.icao24;
    tr.tabIndex = 0;
    tr.setAttribute("aria-selected", String(a.icao24 === selected));
    const cells = [
      [label, ""], [a.icao24, ""], [f.origin_country || "", ""],
      [formatAltitude(f.altitude_feet, f.on_ground), "num"], [formatSpeed(f.velocity_knots), "num"],
      [formatTrack(f.true_track), "num"],
    ];
    cells.forEach(([text, cls], i) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (i === 0) {
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = altitudeColour(f.altitude_feet, f.on_ground);
        td.appendChild(sw);
      }
      td.appendChild(document.createTextNode(text));
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  const tbody = $("aircraft-table").tBodies[0];
  tbody.replaceChildren(body);
  $("list-caption").textContent = shown.length > rows.length
    ? `Showing ${formatCount(rows.length)} of ${formatCount(shown.length)}: type in the filter to narrow down.`
    : `${formatCount(shown.length)} aircraft${filter ? ` matching “${urlState.q}”` : ""}.`;
}

$("aircraft-table").tBodies[0].addEventListener("click", (e) => {
  const tr = e.target.closest("tr");
  if (tr) select(tr.dataset.icao24, { pan: true });
});
$("aircraft-table").tBodies[0].addEventListener("keydown", (e) => {
  const tr = e.target.closest("tr");
  if (tr && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); select(tr.dataset.icao24, { pan: true }); }
});

function renderDetails(now) {
  const panel = $("details");
  const a = selected ? store.get(selected) : null;
  if (!selected) { panel.hidden = true; return; }
  panel.hidden = false;
  if (!a) {
    $("details-callsign").textContent = selected.toUpperCase();
    $("details-fields").replaceChildren();
    $("details-trail").textContent = "No longer in the live picture.";
    return;
  }
  const f = a.flight;
  $("details-callsign").textContent = callsignLabel(f);
  const fields = [
    ["ICAO 24-bit", f.icao24], ["Country", f.origin_country || "–"], ["Category", categoryName(f.category)],
    ["Altitude", formatAltitude(f.altitude_feet, f.on_ground)], ["Speed", formatSpeed(f.velocity_knots)],
    ["Vertical rate", formatVerticalRate(f.vertical_rate_fpm)], ["Track", formatTrack(f.true_track)],
    ["Squawk", squawkLabel(f.squawk)], ["Position", formatPosition(f.latitude, f.longitude)],
    ["Last contact", formatAge(f.last_contact, now)],
  ];
  const dl = document.createDocumentFragment();
  for (const [k, v] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  $("details-fields").replaceChildren(dl);
  $("details-trail").textContent = trailText(a);
}

function trailText(a) {
  if (a.trailLoading) return "Loading trail…";
  if (a.trailError) return `Trail unavailable: ${a.trailError}`;
  if (!a.trail.length) return "Trail: no positions in the history yet.";
  return `Trail: ${formatCount(a.trail.length)} positions since ${formatClock(a.trail[0].time)}`;
}

// ------------------------------------------------------------------ selection and trail
const trailLayer = L.layerGroup().addTo(map);
let trailWanted = null;

async function select(icao24, opts = {}) {
  selected = icao24;
  urlState.sel = icao24;
  writeUrl();
  aircraftLayer.setSelected(icao24);
  trailLayer.clearLayers();
  document.querySelectorAll("#aircraft-table tbody tr").forEach((tr) => {
    tr.setAttribute("aria-selected", String(tr.dataset.icao24 === icao24));
  });
  if (!icao24) { render(); return; }
  const a = store.get(icao24);
  // Opened from a shared URL before the first snapshot: fetch the trail once the aircraft is known.
  trailWanted = a ? null : icao24;
  if (a && opts.pan && a.hasPosition()) map.panTo([a.flight.latitude, a.flight.longitude]);
  if (a) { a.trailLoading = true; a.trailError = null; }
  render();
  try {
    const resp = await fetch(`/flights/${encodeURIComponent(icao24)}/track?limit=${TRACK_LIMIT}`);
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    const current = store.get(icao24);
    if (current) { current.setTrail(body.points || []); current.trailLoading = false; }
  } catch (err) {
    const current = store.get(icao24);
    if (current) { current.trailLoading = false; current.trailError = err.message; }
  }
  if (selected === icao24) { drawTrail(); render(); }
}

// The trail in altitude colours: consecutive points of the same colour share one polyline.
function drawTrail() {
  trailLayer.clearLayers();
  const a = selected && store.get(selected);
  if (!a || a.trail.length < 2) return;
  let run = [];
  let runColour = null;
  const flush = () => {
    if (run.length > 1) {
      L.polyline(run, { renderer: trailRenderer, color: runColour, weight: 3, opacity: 0.9, interactive: false })
        .addTo(trailLayer);
    }
  };
  for (const p of a.trail) {
    const colour = altitudeColour(p.altitude_feet == null ? null : Math.round(p.altitude_feet / 1000) * 1000,
                                  p.on_ground);
    const ll = [p.latitude, p.longitude];
    if (colour !== runColour) {
      if (run.length) run.push(ll);
      flush();
      run = run.length ? [run[run.length - 1]] : [];
      runColour = colour;
    }
    run.push(ll);
  }
  flush();
}

// ------------------------------------------------------------------ live connection
function emitUpdate(msg, flights) {
  // For the bench and anyone embedding the page: when each position reached the browser (and when the
  // tracker sent it: msg.time).
  window.dispatchEvent(new CustomEvent("tracker:update", {
    detail: { kind: msg.type, flights, sentAt: msg.time, receivedAt: Date.now() },
  }));
}

function onSnapshot(msg) {
  emitUpdate(msg, msg.flights);
  if (!live) {
    pending = { snapshot: msg.flights, changed: new Map(), removed: new Set() };
    return;
  }
  store.applySnapshot(msg.flights);
  if (!fittedOnce && msg.flights.length) {
    const pts = msg.flights.filter((f) => f.latitude != null && f.longitude != null)
      .map((f) => [f.latitude, f.longitude]);
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.1), { maxZoom: 8 });
    fittedOnce = true;
  }
  afterChange();
}

function onUpdate(msg) {
  emitUpdate(msg, msg.changed || []);
  if (!live) {
    for (const f of msg.changed || []) { pending.changed.set(f.icao24, f); pending.removed.delete(f.icao24); }
    for (const id of msg.removed || []) { pending.removed.add(id); pending.changed.delete(id); }
    return;
  }
  store.applyUpdate(msg.changed, msg.removed);
  afterChange();
}

function afterChange() {
  if (trailWanted && trailWanted === selected && store.get(trailWanted)) { select(trailWanted); return; }
  if (selected && store.get(selected)) drawTrail();
  render();
}

let countdown = null;
function onState(state, info) {
  const banner = $("connection-banner");
  const label = $("connection-state");
  clearInterval(countdown);
  if (state === "open") {
    banner.hidden = true;
    label.textContent = "Connected";
    alertsPanel.load(); // alerts raised while the page was away
  } else if (state === "connecting") {
    label.textContent = "Connecting…";
    if (!banner.hidden) banner.textContent = "Connection to the tracker lost. Reconnecting now…";
  } else if (state === "lost") {
    label.textContent = "Disconnected";
    const tick = () => {
      const s = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
      banner.textContent = `Connection to the tracker lost. Reconnecting in ${s} s…`;
    };
    tick();
    banner.hidden = false;
    countdown = setInterval(tick, 500);
  }
}

const onAlert = (msg) => alertsPanel.add(msg.alert);
const connection = new LiveConnection(flightsSocketUrl(location, null), { onSnapshot, onUpdate, onAlert, onState });
connection.connect();

// ------------------------------------------------------------------ positions/s from /stats
async function pollStats() {
  try {
    const resp = await fetch("/stats");
    if (resp.ok) {
      const stats = await resp.json();
      $("count-rate").textContent = formatRate(stats.positions_per_s);
    }
  } catch (err) {
    $("count-rate").textContent = "–"; // the banner already says the tracker is unreachable
  }
  setTimeout(pollStats, STATS_POLL_MS);
}
pollStats();

// Refresh ages ("12 s ago") and staleness even when no update arrives.
setInterval(() => { if (live) render(); }, 5000);

if (urlState.sel) select(urlState.sel);

window.flightMap = {
  map, store, select,
  containerPointOf: (icao24) => aircraftLayer.containerPointOf(icao24),
  drawTimesMs: () => aircraftLayer.drawTimesMs.slice(),
  connection,
};
