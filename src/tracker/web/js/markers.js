// Aircraft icons: one shape per ADS-B emitter category, rotated by true_track and coloured by altitude,
// all drawn on ONE canvas (no DOM node per aircraft) so 10,000 aircraft stay smooth.
import { altitudeHue, callsignLabel } from "./formatter.js";

const L = window.L;

// Shapes in a 32x32 box centred on the aircraft, nose up (north); rotated by true_track when drawn.
const SHAPE_PATHS = {
  jet: "M0,-15 L2,-12 L2,-4 L14,3 L14,5.5 L2,2.5 L2,9 L6,12 L6,14 L0,12.5 L-6,14 L-6,12 L-2,9 L-2,2.5 L-14,5.5 L-14,3 L-2,-4 L-2,-12 Z",
  light: "M0,-13 L1.5,-11 L1.5,-6 L13,-5 L13,-2 L1.5,-2 L1,7 L5,8 L5,10 L0,9.5 L-5,10 L-5,8 L-1,7 L-1.5,-2 L-13,-2 L-13,-5 L-1.5,-6 L-1.5,-11 Z",
  glider: "M0,-10 L1,-8 L1,-4 L16,-3 L16,-1.5 L1,-1.5 L0.7,9 L4,10 L4,11.5 L-4,11.5 L-4,10 L-0.7,9 L-1,-1.5 L-16,-1.5 L-16,-3 L-1,-4 L-1,-8 Z",
  rotorcraft: "M0,-7 C4,-7 4,5 0,5 C-4,5 -4,-7 0,-7 Z M-0.8,4 L-0.8,13 L0.8,13 L0.8,4 Z M-3,12 L3,12 L3,13.5 L-3,13.5 Z "
    + "M-10,-9 L-9,-10 L10,9 L9,10 Z M10,-9 L9,-10 L-10,9 L-9,10 Z",
  balloon: "M0,-9 C6,-9 8,-4 6,1 L2,6 L-2,6 L-6,1 C-8,-4 -6,-9 0,-9 Z M-2,8 L2,8 L2,11 L-2,11 Z",
  vehicle: "M-4,-6 L4,-6 L4,6 L-4,6 Z",
  unknown: "M0,-12 L9,10 L0,5 L-9,10 Z",
};

// category -> [shape, scale]
const CATEGORY_SHAPES = {
  2: ["light", 0.8], 3: ["jet", 0.8], 4: ["jet", 1.0], 5: ["jet", 1.15], 6: ["jet", 1.25],
  7: ["jet", 0.75], 8: ["rotorcraft", 0.9], 9: ["glider", 0.9], 10: ["balloon", 0.9],
  11: ["light", 0.6], 12: ["light", 0.65], 14: ["light", 0.55], 15: ["jet", 0.9],
  16: ["vehicle", 0.8], 17: ["vehicle", 0.8],
};

export function shapeFor(category) {
  return CATEGORY_SHAPES[category] || ["unknown", 0.85];
}

// Icon size by zoom: full size from ICON_FULL_ZOOM (a region), shrinking linearly to ICON_SCALE_MIN at
// world zoom, where thousands of aircraft share the screen and full-size icons merge into one blob
// (a jet is ~28 px wide at full size, ~8 px at the minimum: its shape and heading still read).
export const ICON_SCALE_MIN = 0.3;
export const ICON_MIN_ZOOM = 2;
export const ICON_FULL_ZOOM = 8;
const ICON_SCALE_STEP = 0.05;

export function iconScaleForZoom(zoom) {
  if (!Number.isFinite(zoom)) return 1;
  const t = Math.min(1, Math.max(0, (zoom - ICON_MIN_ZOOM) / (ICON_FULL_ZOOM - ICON_MIN_ZOOM)));
  // In steps: a fractional zoom (pinch, fitBounds) then reuses the sprites of a near scale instead of
  // rasterising a new set for every zoom value.
  return Math.round((ICON_SCALE_MIN + t * (1 - ICON_SCALE_MIN)) / ICON_SCALE_STEP) * ICON_SCALE_STEP;
}

let compiledPaths = null;
function paths() {
  if (!compiledPaths) {
    compiledPaths = {};
    for (const [name, d] of Object.entries(SHAPE_PATHS)) compiledPaths[name] = new Path2D(d);
  }
  return compiledPaths;
}

// Each (shape, size, colour, heading) is rasterised once into a small sprite; a redraw is then one
// drawImage per aircraft, which software rendering (no GPU, as in CI) does ~20x faster than filling and
// stroking 10,000 paths. Headings in 5 degree steps and hues in 6 degree steps are invisible differences.
const ROTATION_STEP_DEG = 5;
const HUE_STEP = 6;
const SPRITE_CACHE_MAX = 6000; // bounded: cleared when full (a few MB of small canvases)
const spriteCache = new Map();

export function colourKey(flight, stale) {
  let key;
  if (flight.on_ground) key = "g";
  else if (flight.altitude_feet == null) key = "u";
  else key = String(Math.round(altitudeHue(flight.altitude_feet) / HUE_STEP) * HUE_STEP);
  return stale ? `${key}s` : key;
}

function colourOf(key) {
  const alpha = key.endsWith("s") ? 0.45 : 1;
  if (key.startsWith("g")) return `hsla(0, 0%, 55%, ${alpha})`;
  if (key.startsWith("u")) return `hsla(0, 0%, 35%, ${alpha})`;
  return `hsla(${parseInt(key, 10)}, 85%, 45%, ${alpha})`;
}

function spriteFor(shape, scale, cKey, trackDeg, dpr) {
  const rot = Math.round((((trackDeg || 0) % 360) + 360) % 360 / ROTATION_STEP_DEG) % (360 / ROTATION_STEP_DEG);
  const key = `${shape}|${scale.toFixed(3)}|${cKey}|${rot}|${dpr}`;
  let sprite = spriteCache.get(key);
  if (sprite) return sprite;
  if (spriteCache.size >= SPRITE_CACHE_MAX) {
    for (const old of spriteCache.values()) if (old.image.close) old.image.close();
    spriteCache.clear();
  }
  const k = scale * dpr;
  const size = Math.ceil(36 * k) + 2;
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext("2d");
  const rad = (rot * ROTATION_STEP_DEG * Math.PI) / 180;
  ctx.setTransform(k * Math.cos(rad), k * Math.sin(rad), -k * Math.sin(rad), k * Math.cos(rad), size / 2, size / 2);
  ctx.fillStyle = colourOf(cKey);
  ctx.fill(paths()[shape]);
  ctx.lineWidth = 1 / k;
  // A one-pixel outline is a third of a small icon's width: lighter there, or a crowd of them turns dark.
  ctx.strokeStyle = `rgba(0, 0, 0, ${scale < 0.6 ? 0.3 : 0.55})`;
  ctx.stroke(paths()[shape]);
  sprite = { image: canvas, half: size / 2 };
  // Drawn from an ImageBitmap once it is ready: about 3x faster per drawImage than from a canvas.
  if (window.createImageBitmap) createImageBitmap(canvas).then((bitmap) => { sprite.image = bitmap; });
  spriteCache.set(key, sprite);
  return sprite;
}

const HIT_RADIUS_PX = 12;
const LABEL_MAX_AIRCRAFT = 300;
const LABEL_MIN_ZOOM = 7;
const DRAW_TIMES_KEPT = 200;
const CANVAS_PADDING = 0.25; // of the map's width/height on each side, drawn beyond the visible area

export const AircraftLayer = L.Layer.extend({
  initialize(options) {
    L.setOptions(this, options);
    this._aircraft = [];
    this._selected = null;
    this._nowMs = Date.now();
    this._drawn = { x: new Float32Array(0), y: new Float32Array(0), items: [] };
    this._frame = null;
    this.drawTimesMs = []; // the last DRAW_TIMES_KEPT canvas redraws, for `make bench`
  },

  onAdd(map) {
    this._map = map;
    this._canvas = L.DomUtil.create("canvas", "aircraft-canvas leaflet-zoom-hide");
    this._canvas.setAttribute("aria-hidden", "true"); // the table beside the map is the accessible view
    map.getPanes().overlayPane.appendChild(this._canvas);
    // Not on "move": while the map is dragged the canvas moves with its pane (a CSS transform, free at any
    // aircraft count); it is redrawn once the move ends, with a margin so the edges are not empty meanwhile.
    map.on("moveend resize zoomend viewreset", this.redraw, this);
    map.on("click", this._onClick, this);
    map.on("mousemove", this._onMouseMove, this);
    this.redraw();
  },

  onRemove(map) {
    map.off("moveend resize zoomend viewreset", this.redraw, this);
    map.off("click", this._onClick, this);
    map.off("mousemove", this._onMouseMove, this);
    L.DomUtil.remove(this._canvas);
  },

  setAircraft(aircraft, nowMs) {
    this._aircraft = aircraft;
    this._nowMs = nowMs;
    this.redraw();
  },

  setSelected(icao24) {
    this._selected = icao24;
    this.redraw();
  },

  // Screen point (map container pixels) of one aircraft, or null when it has no position.
  containerPointOf(icao24) {
    const a = this._aircraft.find((x) => x.icao24 === icao24);
    if (!a || !a.hasPosition()) return null;
    return this._map.latLngToContainerPoint([a.flight.latitude, a.flight.longitude]);
  },

  redraw() {
    if (this._frame || !this._map) return;
    this._frame = L.Util.requestAnimFrame(() => { this._frame = null; this._draw(); });
  },

  _draw() {
    const started = performance.now();
    this._drawAircraft();
    this.drawTimesMs.push(performance.now() - started);
    if (this.drawTimesMs.length > DRAW_TIMES_KEPT) this.drawTimesMs.shift();
    // For the bench and anyone embedding the page: when the canvas last showed the aircraft as they are.
    window.dispatchEvent(new CustomEvent("tracker:drawn", { detail: { at: Date.now() } }));
  },

  _drawAircraft() {
    const map = this._map;
    const size = map.getSize();
    const dpr = window.devicePixelRatio || 1;
    const canvas = this._canvas;
    const padX = Math.round(size.x * CANVAS_PADDING);
    const padY = Math.round(size.y * CANVAS_PADDING);
    const cw = size.x + 2 * padX;
    const ch = size.y + 2 * padY;
    if (canvas.width !== cw * dpr || canvas.height !== ch * dpr) {
      canvas.width = cw * dpr;
      canvas.height = ch * dpr;
      canvas.style.width = `${cw}px`;
      canvas.style.height = `${ch}px`;
    }
    L.DomUtil.setPosition(canvas, map.containerPointToLayerPoint([-padX, -padY]));
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);

    const zoom = map.getZoom();
    const iconScale = iconScaleForZoom(zoom);
    const n = this._aircraft.length;
    if (this._drawn.x.length < n) {
      this._drawn.x = new Float32Array(n);
      this._drawn.y = new Float32Array(n);
    }
    const drawn = [];
    const margin = 20;
    // Web Mercator by hand (what map.latLngToContainerPoint does, without an object per aircraft):
    // container point = projected pixel - pixel origin - the map pane's offset.
    const worldPx = 256 * 2 ** zoom;
    const origin = map.getPixelOrigin();
    const paneTopLeft = map.containerPointToLayerPoint([0, 0]);
    const offX = origin.x + paneTopLeft.x;
    const offY = origin.y + paneTopLeft.y;
    const RAD = Math.PI / 180;
    const MAX_LAT = 85.0511287798;
    let selectedPoint = null;
    for (const a of this._aircraft) {
      const f = a.flight;
      if (f.latitude == null || f.longitude == null) continue;
      const lat = Math.max(-MAX_LAT, Math.min(MAX_LAT, f.latitude));
      const x = (worldPx * (f.longitude + 180)) / 360 - offX;
      const sinLat = Math.sin(lat * RAD);
      const y = worldPx * (0.5 - Math.log((1 + sinLat) / (1 - sinLat)) / (4 * Math.PI)) - offY;
      if (x < -padX - margin || y < -padY - margin || x > size.x + padX + margin || y > size.y + padY + margin) continue;
      const [shape, scale] = shapeFor(f.category);
      const sprite = spriteFor(shape, scale * iconScale, colourKey(f, a.isStale(this._nowMs)), f.true_track, dpr);
      ctx.drawImage(sprite.image, Math.round((x + padX) * dpr - sprite.half), Math.round((y + padY) * dpr - sprite.half));
      this._drawn.x[drawn.length] = x;
      this._drawn.y[drawn.length] = y;
      drawn.push(a);
      if (a.icao24 === this._selected) selectedPoint = { x, y };
    }
    this._drawn.items = drawn;
    ctx.setTransform(dpr, 0, 0, dpr, padX * dpr, padY * dpr);
    if (selectedPoint) {
      ctx.beginPath();
      ctx.arc(selectedPoint.x, selectedPoint.y, Math.max(9, 17 * iconScale), 0, 2 * Math.PI);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#d0021b";
      ctx.stroke();
    }
    if (zoom >= LABEL_MIN_ZOOM && drawn.length <= LABEL_MAX_AIRCRAFT) {
      ctx.font = "11px system-ui, sans-serif";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillStyle = "#111";
      for (let i = 0; i < drawn.length; i++) {
        const label = callsignLabel(drawn[i].flight);
        ctx.strokeText(label, this._drawn.x[i] + 13, this._drawn.y[i] + 4);
        ctx.fillText(label, this._drawn.x[i] + 13, this._drawn.y[i] + 4);
      }
    }
  },

  // Nearest drawn aircraft within HIT_RADIUS_PX of a container point.
  hitTest(point) {
    const { x, y, items } = this._drawn;
    let best = null;
    let bestD = HIT_RADIUS_PX * HIT_RADIUS_PX;
    for (let i = 0; i < items.length; i++) {
      const dx = x[i] - point.x;
      const dy = y[i] - point.y;
      const d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = items[i]; }
    }
    return best;
  },

  _onClick(e) {
    const hit = this.hitTest(e.containerPoint);
    this.fire("aircraftclick", { aircraft: hit });
  },

  _onMouseMove(e) {
    this._map.getContainer().style.cursor = this.hitTest(e.containerPoint) ? "pointer" : "";
  },
});
