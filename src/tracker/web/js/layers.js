// Base maps: OpenStreetMap tiles when online, a plain background with a graticule when the tiles
// cannot be loaded (offline, no network in CI) so the aircraft stay readable either way.

const L = window.L;

export const OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
const TILE_FAILURES_BEFORE_FALLBACK = 4;

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

export function createBaseLayers() {
  const osm = L.tileLayer(OSM_URL, {
    maxZoom: 19,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  });
  const plain = new Graticule({ className: "plain-background" });
  return { "OpenStreetMap": osm, "Plain (offline)": plain };
}

// Start with the tiles (unless asked for plain or the browser knows it is offline) and switch to the
// plain background when tiles keep failing before any loaded; onFallback tells the page to say so.
// overlays: {name: layer} toggled in the same control (the geofences).
export function installBaseLayers(map, preferred, onFallback, overlays = null) {
  const layers = createBaseLayers();
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
