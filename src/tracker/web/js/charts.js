// Plain SVG charts for the stats page (no chart library to pin): horizontal bars, lines over hours,
// stacked bars over hours. Each chart is an <svg role="img"> whose label says what it shows.
import { formatCount } from "./formatter.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function svgRoot(container, width, height, label) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": label,
                          class: "chart" });
  container.replaceChildren(svg);
  return svg;
}

function emptyNote(container, text) {
  const p = document.createElement("p");
  p.textContent = text;
  container.replaceChildren(p);
}

export function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

// items: [{label, value, colour}] largest first.
export function horizontalBars(container, items, label) {
  if (!items.length) { emptyNote(container, "No data yet."); return; }
  const rowH = 20;
  const width = 460;
  // Wide enough for the longest label ("United Arab Emirates"), at about 6.5 px a character.
  const labelW = Math.min(220, Math.max(60, Math.max(...items.map((i) => String(i.label).length)) * 6.5 + 12));
  const height = items.length * rowH + 10;
  const svg = svgRoot(container, width, height, label);
  const max = niceMax(Math.max(...items.map((i) => i.value)));
  items.forEach((item, i) => {
    const y = 5 + i * rowH;
    const w = ((width - labelW - 70) * item.value) / max;
    svg.append(
      el("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, item.label),
      el("rect", { x: labelW, y: y + 3, width: Math.max(1, w), height: rowH - 6, fill: item.colour || "#2f80ed",
                   rx: 2 }),
      el("text", { x: labelW + w + 5, y: y + 14 }, formatCount(item.value)),
    );
  });
}

function hourAxis(svg, hours, x, y0, height) {
  const every = Math.max(1, Math.ceil(hours.length / 8));
  hours.forEach((h, i) => {
    if (i % every) return;
    svg.append(el("text", { x: x(i), y: y0 + 14, "text-anchor": "middle" }, `${new Date(h).toISOString().slice(11, 13)}h`));
  });
  svg.append(el("line", { x1: x(0) - 10, x2: x(hours.length - 1) + 10, y1: y0, y2: y0, class: "axis" }));
  svg.append(el("text", { x: 4, y: 12 }, "UTC hour →"));
  return height;
}

function valueAxis(svg, max, yScale, left, right) {
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    const y = yScale(v);
    svg.append(el("line", { x1: left, x2: right, y1: y, y2: y, stroke: "#eef1f4" }));
    svg.append(el("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, formatCount(v)));
  }
}

// series: [{name, colour, values: [number per hour]}]; hours: ISO strings.
export function lineChart(container, hours, series, label) {
  if (!hours.length || !series.length) { emptyNote(container, "No data yet."); return; }
  const width = 460;
  const height = 230;
  const left = 44;
  const right = width - 120;
  const top = 20;
  const bottom = height - 24;
  const svg = svgRoot(container, width, height, label);
  const max = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
  const x = (i) => (hours.length === 1 ? (left + right) / 2 : left + ((right - left) * i) / (hours.length - 1));
  const y = (v) => bottom - ((bottom - top) * v) / max;
  valueAxis(svg, max, y, left, right);
  hourAxis(svg, hours, x, bottom, height);
  series.forEach((s, si) => {
    const d = s.values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(el("path", { d, fill: "none", stroke: s.colour, "stroke-width": 2 }));
    if (hours.length === 1) svg.append(el("circle", { cx: x(0), cy: y(s.values[0]), r: 3, fill: s.colour }));
    svg.append(el("rect", { x: right + 12, y: top + si * 16 - 8, width: 10, height: 10, fill: s.colour }));
    svg.append(el("text", { x: right + 26, y: top + si * 16 + 1 }, s.name));
  });
}

// series: [{name, colour, values: [number per hour]}] stacked bottom-up in the given order.
export function stackedBars(container, hours, series, label) {
  if (!hours.length || !series.length) { emptyNote(container, "No data yet."); return; }
  const width = 460;
  const height = 230;
  const left = 44;
  const right = width - 90;
  const top = 20;
  const bottom = height - 24;
  const svg = svgRoot(container, width, height, label);
  const totals = hours.map((_, i) => series.reduce((acc, s) => acc + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(1, ...totals));
  const slot = (right - left) / hours.length;
  const x = (i) => left + slot * (i + 0.5);
  const y = (v) => bottom - ((bottom - top) * v) / max;
  valueAxis(svg, max, y, left, right);
  hourAxis(svg, hours, x, bottom, height);
  hours.forEach((_, i) => {
    let acc = 0;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (v > 0) {
        svg.append(el("rect", { x: x(i) - slot * 0.4, width: slot * 0.8, y: y(acc + v), height: y(acc) - y(acc + v),
                                fill: s.colour }));
      }
      acc += v;
    }
  });
  [...series].reverse().forEach((s, si) => {
    svg.append(el("rect", { x: right + 12, y: top + si * 16 - 8, width: 10, height: 10, fill: s.colour }));
    svg.append(el("text", { x: right + 26, y: top + si * 16 + 1 }, s.name));
  });
}

// Rows {hour, name, flights} -> {hours, series: [{name, values}]} for the `top` names by aircraft-hours
// (the sum over hours of aircraft seen in each hour); the rest are folded into "Other" when keepOther.
export function pivotHourly(rows, { top = 8, keepOther = false, order = null } = {}) {
  // Every hour from the first to the last, so an hour without data is a 0, not a missing point.
  const times = rows.map((r) => Date.parse(r.hour));
  const hours = [];
  if (times.length) {
    for (let t = Math.min(...times); t <= Math.max(...times); t += 3600000) hours.push(new Date(t).toISOString());
  }
  const index = new Map(hours.map((h, i) => [Date.parse(h), i]));
  const totals = new Map();
  for (const r of rows) totals.set(r.name, (totals.get(r.name) || 0) + r.flights);
  let names = order ? order.filter((n) => totals.has(n))
    : [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([n]) => n);
  const rest = names.slice(top);
  names = names.slice(0, top);
  const byName = new Map(names.map((n) => [n, new Array(hours.length).fill(0)]));
  const other = new Array(hours.length).fill(0);
  for (const r of rows) {
    const values = byName.get(r.name);
    const i = index.get(Date.parse(r.hour));
    if (values) values[i] += r.flights;
    else other[i] += r.flights;
  }
  const series = names.map((name) => ({ name, values: byName.get(name), total: totals.get(name) }));
  if (keepOther && rest.length) {
    series.push({ name: "Other", values: other, total: rest.reduce((acc, n) => acc + totals.get(n), 0) });
  }
  return { hours, series };
}
