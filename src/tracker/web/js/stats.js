// The stats page: the live counts from GET /stats and the hourly analytics from GET /analytics/hourly.
import { horizontalBars, lineChart, pivotHourly, stackedBars } from "./charts.js";
import { ALTITUDE_BANDS, altitudeColour, formatClock } from "./formatter.js";

const REFRESH_MS = 30000;
const $ = (id) => document.getElementById(id);
const PALETTE = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#00a3a3", "#b7950b", "#6d4c41"];

// A representative altitude for each band, so the bars use the map's colours.
const BAND_FEET = { "0-10k": 5000, "10-20k": 15000, "20-30k": 25000, "30-40k": 35000, "40k+": 45000 };
export function bandColour(band) {
  if (band === "ground") return altitudeColour(0, true);
  if (band in BAND_FEET) return altitudeColour(BAND_FEET[band]);
  return altitudeColour(null);
}

const hoursSelect = $("hours");
hoursSelect.value = new URLSearchParams(location.search).get("hours") || "24";
hoursSelect.addEventListener("change", () => {
  history.replaceState(null, "", `${location.pathname}?hours=${hoursSelect.value}`);
  load();
});

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

async function getJson(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return resp.json();
}

async function load() {
  try {
    const [stats, hourly] = await Promise.all([getJson("/stats"), getJson(`/analytics/hourly?hours=${hoursSelect.value}`)]);
    showError("");
    const bands = ALTITUDE_BANDS.map((b) => ({ label: b, value: (stats.by_altitude_band || {})[b] || 0, colour: bandColour(b) }));
    horizontalBars($("now-bands"), bands, "Aircraft now by altitude band");
    const countries = Object.entries(stats.by_country || {}).sort((a, b) => b[1] - a[1]).slice(0, 12)
      .map(([label, value]) => ({ label, value }));
    horizontalBars($("now-countries"), countries, "Aircraft now by country");

    const byCountry = pivotHourly(hourly.by_country, { top: 8 });
    byCountry.series.forEach((s, i) => { s.colour = PALETTE[i % PALETTE.length]; });
    lineChart($("chart-countries"), byCountry.hours, byCountry.series, "Aircraft per hour by country");

    const airlines = pivotHourly(hourly.by_airline, { top: 15 }).series
      .map((s) => ({ label: s.name, value: s.total, colour: "#2f80ed" }));
    horizontalBars($("chart-airlines"), airlines, "Top airlines by aircraft-hours");

    const bandOrder = [...ALTITUDE_BANDS, "unknown"];
    const byBand = pivotHourly(hourly.by_altitude_band, { top: bandOrder.length, order: bandOrder });
    byBand.series.forEach((s) => { s.colour = bandColour(s.name); });
    stackedBars($("chart-bands"), byBand.hours, byBand.series, "Aircraft per hour by altitude band");
    $("refreshed").textContent = `analytics refreshed ${formatClock(hourly.refreshed_at)}`;
  } catch (err) {
    showError(`Could not load the statistics: ${err.message}. Retrying in ${REFRESH_MS / 1000} s.`);
  }
}

load();
setInterval(load, REFRESH_MS);
