// The live picture in the browser: one Aircraft per icao24 with its latest Flight, a bounded trail
// and staleness; the store applies the WebSocket's snapshot/update messages and answers filters.

export const TRAIL_MAX_POINTS = 2000; // bounded: the page can stay open for days
export const STALE_AFTER_S = 60;

export class Aircraft {
  constructor(flight) {
    this.icao24 = flight.icao24;
    this.trail = []; // [{time, latitude, longitude, altitude_feet, on_ground}] oldest first
    this.update(flight);
  }

  update(flight) {
    this.flight = flight;
    // Parsed once here, not at every redraw of 10,000 aircraft.
    this.seenMs = Date.parse(flight.last_contact || flight.time_position || "");
    if (this.trail.length) this.appendTrailPoint(flight);
  }

  appendTrailPoint(p) {
    if (p.latitude == null || p.longitude == null) return;
    const last = this.trail[this.trail.length - 1];
    const time = p.time || p.time_position;
    if (last && last.time === time) return; // the same position again (a snapshot after a reconnect)
    this.trail.push({ time, latitude: p.latitude, longitude: p.longitude,
                      altitude_feet: p.altitude_feet, on_ground: p.on_ground });
    if (this.trail.length > TRAIL_MAX_POINTS) this.trail.splice(0, this.trail.length - TRAIL_MAX_POINTS);
  }

  setTrail(points) {
    this.trail = points.slice(-TRAIL_MAX_POINTS);
    this.appendTrailPoint(this.flight);
  }

  hasPosition() {
    return this.flight.latitude != null && this.flight.longitude != null;
  }

  isStale(nowMs) {
    return Number.isNaN(this.seenMs) ? false : nowMs - this.seenMs > STALE_AFTER_S * 1000;
  }
}

// Filter text as a person types it: "DLH", "3c6", "germany". Matches a callsign prefix,
// an icao24 prefix or part of the country name, case-insensitively.
export function parseFilter(text) {
  return (text || "").trim().toLowerCase();
}

export function matchesFilter(flight, filter) {
  if (!filter) return true;
  const callsign = (flight.callsign || "").trim().toLowerCase();
  return callsign.startsWith(filter)
    || flight.icao24.toLowerCase().startsWith(filter)
    || (flight.origin_country || "").toLowerCase().includes(filter);
}

export class AircraftStore {
  constructor() {
    this.byId = new Map();
    this.version = 0; // bumped on every change so views redraw only when needed
  }

  applySnapshot(flights) {
    const keep = new Map();
    for (const f of flights) {
      const existing = this.byId.get(f.icao24);
      if (existing) { existing.update(f); keep.set(f.icao24, existing); }
      else keep.set(f.icao24, new Aircraft(f));
    }
    this.byId = keep;
    this.version++;
  }

  applyUpdate(changed, removed) {
    for (const f of changed || []) {
      const existing = this.byId.get(f.icao24);
      if (existing) existing.update(f);
      else this.byId.set(f.icao24, new Aircraft(f));
    }
    for (const id of removed || []) this.byId.delete(id);
    this.version++;
  }

  get(icao24) {
    return this.byId.get(icao24);
  }

  get size() {
    return this.byId.size;
  }

  filtered(filter) {
    const out = [];
    for (const a of this.byId.values()) if (matchesFilter(a.flight, filter)) out.push(a);
    return out;
  }
}

// Counters shown above the map, from the aircraft that pass the filter.
export function countAircraft(aircraft) {
  let airborne = 0;
  for (const a of aircraft) if (a.flight.on_ground === false) airborne++;
  return { shown: aircraft.length, airborne };
}
