// Base maps: OpenStreetMap tiles when online; when the tiles cannot be loaded (offline, no network in CI)
// a plain background of land outlines and a graticule, all served by the tracker itself, so the aircraft
// stay readable and placed either way.

const L = window.L;

export const OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
const TILE_FAILURES_BEFORE_FALLBACK = 4;
// Natural Earth 1:110m countries, which `make setup` converts from the pinned npm package world-atlas
// (infra/web/map_assets.py) and the tracker serves with the other vendored files: nothing from the internet.
export const LAND_URL = "/vendor/world-atlas/countries-110m.geojson";
export const LAND_PANE = "land";
// Below the tile pane (200): the graticule's lines stay visible over the land; the aircraft canvas, the
// trail and the geofences are in the overlay pane (400), above both.
const LAND_PANE_Z = 150;
export const LAND_STYLE = { color: "#a9a290", weight: 0.7, opacity: 1, fillColor: "#f6f3ea", fillOpacity: 1 };

// The countries as one SVG layer (177 paths: cheap, and scaled by the browser while zooming). The data is
// fetched the first time the layer is shown, so a page on the online tiles never loads it; when it is
// missing (`make setup` not run) the graticule alone is drawn and the console says why.
const LandLayer = L.GeoJSON.extend({
  onAdd(map) {
    L.GeoJSON.prototype.onAdd.call(this, map);
    if (this._requested) return;
    this._requested = true;
    fetch(LAND_URL)
      .then((resp) => (resp.ok ? resp.json() : Promise.reject(new Error(`HTTP ${resp.status}`))))
      .then((data) => this.addData(data))
      .catch((err) => console.warn(`land outlines not drawn (${LAND_URL}: ${err.message}); run \`make setup\``));
  },
});

function createLandLayer(map) {
  if (!map.getPane(LAND_PANE)) map.createPane(LAND_PANE).style.zIndex = String(LAND_PANE_Z);
  return new LandLayer(null, {
    pane: LAND_PANE, renderer: L.svg({ pane: LAND_PANE, padding: 0.5 }), interactive: false, style: LAND_STYLE,
    attribution: 'Land: <a href="https://www.naturalearthdata.com/">Natural Earth</a>',
  });
}

// Graticule every 30/10/5/1 degrees depending on zoom, drawn per tile on canvas: nothing to download.
const Graticule = L.GridLayer.extend({
  createTile(coords) {
    const tile = document.createElement("canvas");
    const size = this.getTileSize();
    tile.width = size.x;
    tile.height = size.y;
    const ctx = tile.getContext("2d");
    const map = this._map;
    const z = coords.z;
    const step = z <= 2 ? 30 : z <= 4 ? 10 : z <= 6 ? 5 : z <= 9 ? 1 : 0.25;
    const nw = map.unproject(coords.scaleBy(size), z);
    const se = map.unproject(coords.add([1, 1]).scaleBy(size), z);
    const origin = coords.scaleBy(size);
    // Labels on every third row/column of tiles only: enough to read, not one per tile.
    const labelLon = ((coords.y % 3) + 3) % 3 === 0;
    const labelLat = ((coords.x % 3) + 3) % 3 === 0;
    ctx.strokeStyle = "rgba(60, 90, 120, 0.35)";
    ctx.lineWidth = 1;
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillStyle = "rgba(60, 90, 120, 0.7)";
    for (let lon = Math.ceil(nw.lng / step) * step; lon <= se.lng; lon += step) {
      const x = map.project([0, lon], z).x - origin.x;
      ctx.beginPath(); ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, size.y); ctx.stroke();
      if (labelLon) ctx.fillText(`${Math.abs(+lon.toFixed(2))}\u00b0${lon < 0 ? "W" : lon > 0 ? "E" : ""}`, x + 3, 11);
    }
    for (let lat = Math.ceil(se.lat / step) * step; lat <= nw.lat; lat += step) {
      const y = map.project([lat, 0], z).y - origin.y;
      ctx.beginPath(); ctx.moveTo(0, y + 0.5); ctx.lineTo(size.x, y + 0.5); ctx.stroke();
      if (labelLat) ctx.fillText(`${Math.abs(+lat.toFixed(2))}\u00b0${lat < 0 ? "S" : lat > 0 ? "N" : ""}`, 3, y - 3);
    }
    return tile;
  },
});

export function createBaseLayers(map) {
  const osm = L.tileLayer(OSM_URL, {
    maxZoom: 19,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  });
  const plain = L.layerGroup([createLandLayer(map), new Graticule({ className: "plain-background" })]);
  return { "OpenStreetMap": osm, "Plain (offline)": plain };
}

// Start with the tiles (unless asked for plain or the browser knows it is offline) and switch to the
// plain background when tiles keep failing before any loaded; onFallback tells the page to say so.
// overlays: {name: layer} toggled in the same control (the geofences).
export function installBaseLayers(map, preferred, onFallback, overlays = null) {
  const layers = createBaseLayers(map);
  const osm = layers["OpenStreetMap"];
  const plain = layers["Plain (offline)"];
  L.control.layers(layers, overlays, { position: "topright" }).addTo(map);
  if (preferred === "plain" || navigator.onLine === false) {
    plain.addTo(map);
    if (preferred !== "plain") onFallback("You are offline: plain background instead of map tiles.");
    return layers;
  }
  let loaded = 0;
  let failed = 0;
  osm.on("tileload", () => { loaded++; });
  osm.on("tileerror", () => {
    failed++;
    if (loaded === 0 && failed === TILE_FAILURES_BEFORE_FALLBACK && map.hasLayer(osm)) {
      map.removeLayer(osm);
      plain.addTo(map);
      onFallback("Map tiles could not be loaded: plain background instead.");
    }
  });
  osm.addTo(map);
  return layers;
}
