// Units, labels and the altitude colour scale: every number a person reads on the map or the stats
// page goes through here, so feet/knots/fpm and the colours agree everywhere.

export const ALTITUDE_BANDS = ["ground", "0-10k", "10-20k", "20-30k", "30-40k", "40k+"];

// OpenSky "category" (ADS-B emitter category) -> a name a person understands.
const CATEGORY_NAMES = {
  0: "No information", 1: "No category", 2: "Light", 3: "Small", 4: "Large",
  5: "High-vortex large", 6: "Heavy", 7: "High performance", 8: "Rotorcraft", 9: "Glider",
  10: "Lighter than air", 11: "Parachutist", 12: "Ultralight", 13: "Reserved", 14: "Drone (UAV)",
  15: "Space vehicle", 16: "Emergency vehicle", 17: "Service vehicle", 18: "Point obstacle",
  19: "Cluster obstacle", 20: "Line obstacle",
};

const DASH = "\u2013";

export function isKnown(value) {
  return value !== null && value !== undefined && !(typeof value === "number" && Number.isNaN(value));
}

export function formatCount(n) {
  return isKnown(n) ? Math.round(n).toLocaleString("en-US") : DASH;
}

export function formatAltitude(feet, onGround = false) {
  if (onGround) return "ground";
  return isKnown(feet) ? `${Math.round(feet).toLocaleString("en-US")} ft` : DASH;
}

export function formatSpeed(knots) {
  return isKnown(knots) ? `${Math.round(knots)} kt` : DASH;
}

export function formatVerticalRate(fpm) {
  if (!isKnown(fpm)) return DASH;
  const rounded = Math.round(fpm / 64) * 64; // ADS-B reports vertical rate in 64 ft/min steps
  if (rounded === 0) return "level";
  return `${rounded > 0 ? "\u2191" : "\u2193"} ${Math.abs(rounded).toLocaleString("en-US")} ft/min`;
}

export function formatTrack(degrees) {
  if (!isKnown(degrees)) return DASH;
  const d = ((Math.round(degrees) % 360) + 360) % 360;
  const compass = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"][Math.round(d / 45) % 8];
  return `${d}\u00b0 ${compass}`;
}

export function formatPosition(lat, lon) {
  if (!isKnown(lat) || !isKnown(lon)) return DASH;
  return `${Math.abs(lat).toFixed(4)}\u00b0${lat >= 0 ? "N" : "S"} ${Math.abs(lon).toFixed(4)}\u00b0${lon >= 0 ? "E" : "W"}`;
}

export function formatRate(perSecond) {
  return isKnown(perSecond) ? `${perSecond < 10 ? perSecond.toFixed(1) : formatCount(perSecond)}/s` : DASH;
}

// "12 s ago" from an ISO time; nowMs is passed in so the function stays pure.
export function formatAge(iso, nowMs) {
  if (!iso) return DASH;
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return DASH;
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

export function formatClock(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? DASH : d.toISOString().slice(11, 19) + " UTC";
}

export function callsignLabel(flight) {
  const cs = (flight.callsign || "").trim();
  return cs || flight.icao24.toUpperCase();
}

export function categoryName(category) {
  return isKnown(category) && category in CATEGORY_NAMES ? CATEGORY_NAMES[category] : "Unknown";
}

export function squawkLabel(squawk) {
  if (!squawk) return DASH;
  const meaning = { "7500": "hijack", "7600": "radio failure", "7700": "emergency" }[squawk];
  return meaning ? `${squawk} (${meaning})` : squawk;
}

// Same bands as GET /stats "by_altitude_band".
export function altitudeBand(feet, onGround) {
  if (onGround) return "ground";
  if (!isKnown(feet) || feet < 10000) return "0-10k";
  if (feet < 20000) return "10-20k";
  if (feet < 30000) return "20-30k";
  if (feet < 40000) return "30-40k";
  return "40k+";
}

// Altitude -> hue, piecewise linear: orange near the ground, green at 10,000 ft, blue at 30,000 ft,
// magenta from 40,000 ft; the same scale on the legend, the icons and the trail.
const HUE_STOPS = [[0, 20], [2000, 32], [4000, 43], [6000, 54], [8000, 72], [10000, 110],
                   [20000, 180], [30000, 230], [40000, 300]];

export function altitudeHue(feet) {
  if (!isKnown(feet) || feet <= HUE_STOPS[0][0]) return HUE_STOPS[0][1];
  for (let i = 1; i < HUE_STOPS.length; i++) {
    const [alt, hue] = HUE_STOPS[i];
    if (feet <= alt) {
      const [alt0, hue0] = HUE_STOPS[i - 1];
      return hue0 + ((feet - alt0) / (alt - alt0)) * (hue - hue0);
    }
  }
  return HUE_STOPS[HUE_STOPS.length - 1][1];
}

export function altitudeColour(feet, onGround = false) {
  if (onGround) return "hsl(0, 0%, 55%)";
  if (!isKnown(feet)) return "hsl(0, 0%, 35%)";
  return `hsl(${Math.round(altitudeHue(feet))}, 85%, 45%)`;
}

export const LEGEND_STOPS = [0, 10000, 20000, 30000, 40000];

export function legendLabel(feet) {
  return feet === 0 ? "0 ft" : `${feet / 1000}k`;
}
