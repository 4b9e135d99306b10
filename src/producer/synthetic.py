"""Synthetic global air traffic that needs no network: OpenSky-shaped states for a deterministic fleet.

Each aircraft belongs to an airline of one country (icao24 drawn from that country's ICAO
allocation block, so origin_country matches the address) and flies great-circle legs between
real airports (``airportsdata``, weighted toward big hubs): taxi, take-off roll, climb, cruise,
descent, landing roll, taxi-in, turnaround at the gate, then the next leg. A position is a pure
function of (seed, aircraft, time), so the same seed and tick times give identical output.
"""
from __future__ import annotations

import bisect
import logging
import math
import random
from dataclasses import dataclass
from functools import lru_cache

logger = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8
FT = 0.3048

# (origin_country as OpenSky names it, ISO 3166 alpha-2, first and last address of the ICAO 24-bit
# allocation block, share of the synthetic fleet, airline ICAO designators registered there)
COUNTRIES: tuple[tuple[str, str, int, int, float, tuple[str, ...]], ...] = (
    ("United States", "US", 0xA00000, 0xAFFFFF, 26.0, ("AAL", "UAL", "DAL", "SWA", "JBU", "ASA", "FDX", "UPS")),
    ("China", "CN", 0x780000, 0x7BFFFF, 9.0, ("CCA", "CES", "CSN", "CHH", "CXA")),
    ("United Kingdom", "GB", 0x400000, 0x43FFFF, 4.5, ("BAW", "EZY", "VIR", "TOM")),
    ("Germany", "DE", 0x3C0000, 0x3FFFFF, 4.5, ("DLH", "EWG", "CFG", "BOX")),
    ("France", "FR", 0x380000, 0x3BFFFF, 3.0, ("AFR", "TVF", "CRL")),
    ("Ireland", "IE", 0x4CA000, 0x4CAFFF, 3.5, ("RYR", "EIN")),
    ("Spain", "ES", 0x340000, 0x37FFFF, 2.5, ("IBE", "VLG", "AEA")),
    ("Italy", "IT", 0x300000, 0x33FFFF, 1.5, ("ITY", "NOS")),
    ("Netherlands", "NL", 0x480000, 0x487FFF, 1.8, ("KLM", "TRA")),
    ("Switzerland", "CH", 0x4B0000, 0x4B7FFF, 1.2, ("SWR", "EDW")),
    ("Austria", "AT", 0x440000, 0x447FFF, 0.7, ("AUA",)),
    ("Belgium", "BE", 0x448000, 0x44FFFF, 0.5, ("BEL",)),
    ("Portugal", "PT", 0x490000, 0x497FFF, 0.7, ("TAP",)),
    ("Sweden", "SE", 0x4A8000, 0x4AFFFF, 0.6, ("SAS",)),
    ("Norway", "NO", 0x478000, 0x47FFFF, 0.6, ("NOZ",)),
    ("Finland", "FI", 0x460000, 0x467FFF, 0.4, ("FIN",)),
    ("Poland", "PL", 0x488000, 0x48FFFF, 0.6, ("LOT",)),
    ("Greece", "GR", 0x468000, 0x46FFFF, 0.4, ("AEE",)),
    ("Turkey", "TR", 0x4B8000, 0x4BFFFF, 3.0, ("THY", "PGT")),
    ("Russian Federation", "RU", 0x100000, 0x1FFFFF, 3.0, ("AFL", "SBI")),
    ("Canada", "CA", 0xC00000, 0xC3FFFF, 3.0, ("ACA", "WJA")),
    ("Mexico", "MX", 0x0D0000, 0x0D7FFF, 1.5, ("AMX", "VOI")),
    ("Brazil", "BR", 0xE40000, 0xE7FFFF, 2.0, ("TAM", "GLO", "AZU")),
    ("Argentina", "AR", 0xE00000, 0xE3FFFF, 0.5, ("ARG",)),
    ("Chile", "CL", 0xE80000, 0xE80FFF, 0.5, ("LAN",)),
    ("Colombia", "CO", 0x0AC000, 0x0ACFFF, 0.5, ("AVA",)),
    ("Japan", "JP", 0x840000, 0x87FFFF, 2.5, ("JAL", "ANA")),
    ("Republic of Korea", "KR", 0x718000, 0x71FFFF, 1.2, ("KAL", "AAR")),
    ("India", "IN", 0x800000, 0x83FFFF, 3.0, ("AIC", "IGO")),
    ("Australia", "AU", 0x7C0000, 0x7FFFFF, 1.5, ("QFA", "VOZ")),
    ("New Zealand", "NZ", 0xC80000, 0xC87FFF, 0.3, ("ANZ",)),
    ("Singapore", "SG", 0x768000, 0x76FFFF, 0.7, ("SIA",)),
    ("Thailand", "TH", 0x880000, 0x887FFF, 0.6, ("THA",)),
    ("Indonesia", "ID", 0x8A0000, 0x8A7FFF, 1.0, ("GIA",)),
    ("Malaysia", "MY", 0x750000, 0x757FFF, 0.6, ("MAS",)),
    ("United Arab Emirates", "AE", 0x896000, 0x896FFF, 1.8, ("UAE", "ETD")),
    ("Qatar", "QA", 0x06A000, 0x06AFFF, 1.0, ("QTR",)),
    ("Saudi Arabia", "SA", 0x710000, 0x717FFF, 0.8, ("SVA",)),
    ("Israel", "IL", 0x738000, 0x73FFFF, 0.3, ("ELY",)),
    ("Egypt", "EG", 0x010000, 0x017FFF, 0.4, ("MSR",)),
    ("Ethiopia", "ET", 0x040000, 0x040FFF, 0.4, ("ETH",)),
    ("South Africa", "ZA", 0x008000, 0x00FFFF, 0.4, ("SAA",)),
)

# Busiest passenger airports: these draw most of the traffic, as they do in reality.
HUBS = frozenset((
    "ATL DXB DFW LHR HND DEN IST LAX ORD DEL CDG JFK AMS FRA MAD SIN ICN BCN CAN PVG PEK SZX CTU LAS "
    "MCO MIA CLT SEA PHX EWR SFO IAH BOS MSP DTW FLL YYZ MEX GRU BOG DOH MUC FCO LGW DUB ZRH VIE CPH "
    "OSL ARN HEL LIS BKK KUL CGK MNL SYD MEL BOM BLR HKG TPE NRT KIX JED RUH SVO AUH JNB CAI ADD SCL "
    "LIM EZE YVR YUL PMI AYT ATH WAW BRU MAN PRG BUD").split())


def country_for_icao24(icao24: str) -> str | None:
    """The origin_country that the allocation table assigns to an address (None outside it)."""
    address = int(icao24, 16)
    for name, _iso, lo, hi, _w, _airlines in COUNTRIES:
        if lo <= address <= hi:
            return name
    return None


# ---------------------------------------------------------------- airports
@dataclass(frozen=True)
class Airport:
    iata: str
    lat: float
    lon: float
    elevation_m: float
    country: str
    weight: float
    xyz: tuple[float, float, float]


def _unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def central_angle(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """Angle between two unit vectors, well conditioned for small and large angles."""
    cx, cy, cz = a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]
    return math.atan2(math.sqrt(cx * cx + cy * cy + cz * cz), a[0] * b[0] + a[1] * b[1] + a[2] * b[2])


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return EARTH_RADIUS_M * central_angle(_unit_vector(lat1, lon1), _unit_vector(lat2, lon2))


class AirportTable:
    """Airports with an IATA and a 4-letter ICAO code, with cumulative weights for fast draws."""

    def __init__(self, airports: list[Airport]):
        self.airports = airports
        self._all = self._cumulative(range(len(airports)))
        by_country: dict[str, list[int]] = {}
        for i, ap in enumerate(airports):
            by_country.setdefault(ap.country, []).append(i)
        self._by_country = {c: self._cumulative(idx) for c, idx in by_country.items()}

    def _cumulative(self, indices) -> tuple[list[int], list[float]]:
        idx, cum, total = [], [], 0.0
        for i in indices:
            total += self.airports[i].weight
            idx.append(i)
            cum.append(total)
        return idx, cum

    def draw(self, rng: random.Random, country: str | None = None) -> int:
        idx, cum = self._by_country.get(country, self._all) if country else self._all
        return idx[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(idx) - 1)]

    def has_country(self, country: str) -> bool:
        return country in self._by_country


@lru_cache(maxsize=1)
def load_airports() -> AirportTable:
    import airportsdata  # deferred: 0.1 s to load, only the synthetic source needs it

    airports = []
    for code, row in sorted(airportsdata.load("IATA").items()):
        icao = row.get("icao") or ""
        if len(icao) != 4 or not icao.isalpha() or not icao.isupper():
            continue  # private strips and heliports carry numeric local ids instead
        weight = 25.0 if code in HUBS else 3.0 if "International" in row["name"] else 0.2
        lat, lon = float(row["lat"]), float(row["lon"])
        airports.append(Airport(code, lat, lon, float(row.get("elevation") or 0.0) * FT, row["country"],
                                weight, _unit_vector(lat, lon)))
    return AirportTable(airports)


# ---------------------------------------------------------------- flight legs
# Geometric height runs ~1.5% above pressure altitude at cruise levels in a warm-ish atmosphere.
GEO_FACTOR = 1.015
# ADS-B emitter categories as OpenSky reports them in field 17 (extended=1): 3 Small (regional jets and
# turboprops), 4 Large (A320/737 family), 5 High Vortex Large (B757), 6 Heavy (widebodies).
SMALL, NARROWBODY, HIGH_VORTEX, WIDEBODY = 3, 4, 5, 6
_RANGE_M = {SMALL: (450e3, 1_800e3), NARROWBODY: (700e3, 5_000e3), HIGH_VORTEX: (700e3, 6_500e3),
            WIDEBODY: (2_500e3, 13_000e3)}
# Share of each category in an airline's fleet, as the real fleets roughly are: low-cost carriers fly
# one narrowbody type, Gulf and Asian hub carriers mostly widebodies, integrators many widebodies and
# 757s, US majors 757s and regional partners. Airlines not listed fly the default mix.
_DEFAULT_MIX = ((WIDEBODY, 0.25), (SMALL, 0.05), (NARROWBODY, 0.70))
_FLEET_MIX: dict[str, tuple[tuple[int, float], ...]] = {
    **dict.fromkeys(("RYR", "EZY", "SWA", "JBU", "VLG", "TRA", "NOZ", "EWG", "VOZ", "PGT", "IGO", "VOI", "WJA",
                     "TVF", "CRL", "NOS", "TOM", "GLO"), ((NARROWBODY, 1.0),)),
    **dict.fromkeys(("UAE", "QTR", "ETD", "SIA", "CXA"), ((WIDEBODY, 0.85), (NARROWBODY, 0.15))),
    **dict.fromkeys(("FDX", "UPS", "BOX"), ((WIDEBODY, 0.55), (HIGH_VORTEX, 0.30), (NARROWBODY, 0.15))),
    **dict.fromkeys(("AAL", "UAL", "DAL"), ((WIDEBODY, 0.20), (HIGH_VORTEX, 0.10), (SMALL, 0.15),
                                            (NARROWBODY, 0.55))),
    **dict.fromkeys(("AZU", "ASA", "EIN", "SAS", "LOT", "AEE", "ITY"), ((SMALL, 0.30), (NARROWBODY, 0.65),
                                                                        (WIDEBODY, 0.05))),
}


def fleet_category(airline: str, u: float) -> int:
    """The emitter category of an aircraft of ``airline``, from a uniform draw u in [0, 1)."""
    mix = _FLEET_MIX.get(airline, _DEFAULT_MIX)
    for category, share in mix:
        u -= share
        if u < 0:
            return category
    return mix[-1][0]


@dataclass(frozen=True, slots=True)
class Leg:
    """One flight from gate to gate plus the turnaround after it; times are epoch seconds."""
    origin: int
    dest: int
    callsign: str
    squawk: str
    # phase boundaries
    start: float
    t_roll: float
    t_climb: float
    t_cruise: float
    t_desc: float
    t_land: float
    t_taxi_in: float
    t_arrive: float
    end: float
    # along-track distance (m) at each boundary
    s_roll: float
    s_climb: float
    s_cruise: float
    s_desc: float
    s_land: float
    s_taxi_in: float
    distance: float
    # speeds (m/s), vertical rates (m/s) and altitudes (m)
    v_taxi: float
    v_rotate: float
    v_cruise: float
    v_approach: float
    v_exit: float
    climb_rate: float
    descent_rate: float
    elev_origin: float
    cruise_alt: float
    elev_dest: float
    # geometry: end points as unit vectors and the central angle between them
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    angle: float
    sin_angle: float
    # constant accelerations (m/s^2) of the take-off roll, climb, descent and landing roll
    acc_roll: float
    acc_climb: float
    acc_descent: float
    acc_landing: float
    cruise_geo_alt: float


def _squawk(rng: random.Random) -> str:
    while True:
        code = "".join(str(rng.randrange(8)) for _ in range(4))
        if code not in ("7500", "7600", "7700"):  # hijack, radio failure, emergency
            return code


def plan_leg(rng: random.Random, airports: AirportTable, origin: int, dest: int, start: float,
             airline: str, category: int) -> Leg:
    """Timeline of one leg; distances are integrals of piecewise-linear speed profiles."""
    ao, ad = airports.airports[origin], airports.airports[dest]
    angle = central_angle(ao.xyz, ad.xyz)
    distance = EARTH_RADIUS_M * angle
    v_taxi, v_rotate = round(rng.uniform(6.0, 10.0), 2), rng.uniform(75.0, 85.0)
    # Rounded once here so the hot path can emit cruise values without rounding them every tick.
    v_cruise = round(rng.uniform(240.0, 260.0) if category == WIDEBODY else rng.uniform(230.0, 250.0), 2)
    v_approach, v_exit = rng.uniform(68.0, 78.0), round(rng.uniform(6.0, 10.0), 2)
    climb_rate, descent_rate = round(rng.uniform(8.0, 15.0), 2), round(rng.uniform(7.0, 12.0), 2)
    cruise_alt = round(rng.randrange(300, 411, 10) * 100 * FT, 2)  # FL300..FL410
    taxi_out, roll = rng.uniform(300.0, 660.0), rng.uniform(30.0, 45.0)
    landing_roll, taxi_in = rng.uniform(25.0, 40.0), rng.uniform(180.0, 480.0)
    turnaround = rng.uniform(20.0, 40.0) * 60.0

    while True:
        climb_t = (cruise_alt - ao.elevation_m) / climb_rate
        descent_t = (cruise_alt - ad.elevation_m) / descent_rate
        fixed = (v_taxi * taxi_out + (v_taxi + v_rotate) / 2 * roll + (v_rotate + v_cruise) / 2 * climb_t
                 + (v_cruise + v_approach) / 2 * descent_t + (v_approach + v_exit) / 2 * landing_roll
                 + v_exit * taxi_in)
        if distance - fixed >= 20e3 or cruise_alt <= 6000:
            break
        cruise_alt = round(cruise_alt - 1000 * FT, 2)  # too short for this level: cruise lower
    cruise_t = max(distance - fixed, 0.0) / v_cruise

    t_roll = start + taxi_out
    t_climb = t_roll + roll
    t_cruise = t_climb + climb_t
    t_desc = t_cruise + cruise_t
    t_land = t_desc + descent_t
    t_taxi_in = t_land + landing_roll
    t_arrive = t_taxi_in + taxi_in
    s_roll = v_taxi * taxi_out
    s_climb = s_roll + (v_taxi + v_rotate) / 2 * roll
    s_cruise = s_climb + (v_rotate + v_cruise) / 2 * climb_t
    s_desc = s_cruise + v_cruise * cruise_t
    s_land = s_desc + (v_cruise + v_approach) / 2 * descent_t
    s_taxi_in = s_land + (v_approach + v_exit) / 2 * landing_roll
    total = s_taxi_in + v_exit * taxi_in
    leg_angle = angle * total / distance
    return Leg(origin, dest, f"{airline}{rng.randint(1, 9999)}", _squawk(rng),
               start, t_roll, t_climb, t_cruise, t_desc, t_land, t_taxi_in, t_arrive, t_arrive + turnaround,
               s_roll, s_climb, s_cruise, s_desc, s_land, s_taxi_in, total,
               v_taxi, v_rotate, v_cruise, v_approach, v_exit, climb_rate, descent_rate,
               ao.elevation_m, cruise_alt, ad.elevation_m, ao.xyz, ad.xyz, leg_angle, math.sin(leg_angle),
               (v_rotate - v_taxi) / roll, (v_cruise - v_rotate) / climb_t,
               (v_approach - v_cruise) / descent_t, (v_exit - v_approach) / landing_roll,
               round(cruise_alt * GEO_FACTOR, 2))


# ---------------------------------------------------------------- emergencies
# Rare, deterministic emergencies so the alerts have something to see: in every clock hour a few
# aircraft of the fleet (chosen from the seed and the hour) squawk 7700, 7600 or 7500 for a while,
# then return to their assigned code. Independent of when the producer started.
EMERGENCIES_PER_HOUR = 3
EMERGENCY_MINUTES = (10.0, 20.0)
_EMERGENCY_CODES = (("7700", 0.70), ("7600", 0.25), ("7500", 0.05))


def emergencies_in_hour(seed: int, fleet_size: int, hour: int) -> dict[int, tuple[float, float, str]]:
    """{aircraft index: (start, end, squawk)} of the emergencies that begin in this hour (epoch // 3600)."""
    rng = random.Random(f"{seed}:emergency:{hour}")
    chosen: dict[int, tuple[float, float, str]] = {}
    for _ in range(min(EMERGENCIES_PER_HOUR, fleet_size)):
        index = rng.randrange(fleet_size)
        start = hour * 3600.0 + rng.uniform(0.0, 3600.0)
        end = start + rng.uniform(*EMERGENCY_MINUTES) * 60.0
        draw, code = rng.random(), _EMERGENCY_CODES[-1][0]
        for candidate, share in _EMERGENCY_CODES:
            if draw < share:
                code = candidate
                break
            draw -= share
        chosen.setdefault(index, (start, end, code))
    return chosen


class _Aircraft:
    __slots__ = ("index", "icao24", "country", "iso", "airline", "category", "home", "leg_no", "leg")

    def __init__(self, index, icao24, country, iso, airline, category, home):
        self.index, self.icao24, self.country, self.iso = index, icao24, country, iso
        self.airline, self.category, self.home = airline, category, home
        self.leg_no, self.leg = 0, None


# ---------------------------------------------------------------- the fleet
class SyntheticFleet:
    """N aircraft; ``tick(t)`` gives every aircraft's state at t, ``advance(t, k)`` the next k of them."""

    def __init__(self, aircraft: int = 8000, seed: int = 42, start_time: float = 1_700_000_000.0,
                 airports: AirportTable | None = None):
        if aircraft < 1:
            raise ValueError("aircraft must be >= 1")
        self.seed = seed
        self.airports = airports or load_airports()
        self._cursor = 0
        self._emergency_hours: dict[int, dict[int, tuple[float, float, str]]] = {}
        rng = random.Random(f"{seed}:fleet")
        countries = [c for c in COUNTRIES if self.airports.has_country(c[1])]
        cum, total = [], 0.0
        for c in countries:
            total += c[4]
            cum.append(total)
        used: set[int] = set()
        self.aircraft: list[_Aircraft] = []
        per_country: dict[str, int] = {}
        for i in range(aircraft):
            while True:
                name, iso, lo, hi, _w, airlines = countries[bisect.bisect_right(cum, rng.random() * total)]
                # Small blocks (4,096 addresses) fill up in huge fleets: keep draws fast, never loop forever.
                if per_country.get(name, 0) < (hi - lo + 1) // 2:
                    per_country[name] = per_country.get(name, 0) + 1
                    break
            while True:  # unique address inside the country's block
                address = rng.randint(lo, hi)
                if address not in used:
                    used.add(address)
                    break
            u, airline = rng.random(), rng.choice(airlines)  # the draws of earlier versions, in order
            ac = _Aircraft(i, f"{address:06x}", name, iso, airline, fleet_category(airline, u),
                           self.airports.draw(rng, iso))
            self._first_leg(ac, start_time)
            self.aircraft.append(ac)

    def __len__(self) -> int:
        return len(self.aircraft)

    # -- schedule
    def _pick_dest(self, rng: random.Random, ac: _Aircraft, origin: int, outbound: bool) -> int:
        lo, hi = _RANGE_M[ac.category]
        o = self.airports.airports[origin].xyz
        best, best_gap = ac.home, math.inf
        for _ in range(40):
            cand = self.airports.draw(rng, None if outbound else ac.iso)
            d = EARTH_RADIUS_M * central_angle(o, self.airports.airports[cand].xyz)
            if lo <= d <= hi:
                return cand
            gap = lo - d if d < lo else d - hi
            if gap < best_gap and cand != origin:
                best, best_gap = cand, gap
        if best != origin:
            return best
        if not outbound:  # a tiny home country with only its origin airport: fly anywhere in range
            return self._pick_dest(rng, ac, origin, True)
        return (origin + 1) % len(self.airports.airports)  # every draw hit the origin: practically never

    def _plan(self, ac: _Aircraft, origin: int, start: float) -> Leg:
        rng = random.Random(f"{self.seed}:{ac.index}:{ac.leg_no}")
        outbound = ac.leg_no % 2 == 0  # even legs leave the home country, odd legs return
        dest = self._pick_dest(rng, ac, origin, outbound)
        return plan_leg(rng, self.airports, origin, dest, start, ac.airline, ac.category)

    def _first_leg(self, ac: _Aircraft, now: float) -> None:
        # Start somewhere uniformly inside the gate-to-gate-to-gate cycle: the fleet is in a steady
        # state from the first tick (realistic share of climbing, cruising and parked aircraft).
        # Planning is seeded per (seed, aircraft, leg), so re-planning with the real start time
        # gives the same route and durations.
        cycle = self._plan(ac, ac.home, 0.0).end
        offset = random.Random(f"{self.seed}:{ac.index}:phase").uniform(0.0, cycle)
        ac.leg = self._plan(ac, ac.home, now - offset)

    def _next_leg(self, ac: _Aircraft) -> None:
        prev = ac.leg
        ac.leg_no += 1
        ac.leg = self._plan(ac, prev.dest, prev.end)

    def _emergency_squawk(self, index: int, t: float) -> str | None:
        # An emergency that began late in the previous hour may still be running.
        hour = int(t // 3600)
        for h in (hour, hour - 1):
            plan = self._emergency_hours.get(h)
            if plan is None:
                if len(self._emergency_hours) > 4:  # bounded: only the hours around "now" are needed
                    self._emergency_hours.pop(min(self._emergency_hours))
                plan = self._emergency_hours[h] = emergencies_in_hour(self.seed, len(self.aircraft), h)
            window = plan.get(index)
            if window is not None and window[0] <= t < window[1]:
                return window[2]
        return None

    # -- states
    def tick(self, t: float) -> list[dict]:
        """States of every aircraft at epoch time t (t must not go backwards per aircraft)."""
        state = self._state
        return [state(ac, t) for ac in self.aircraft]

    def advance(self, t: float, count: int) -> list[dict]:
        """States at t of the next ``count`` aircraft in round-robin order (rate mode)."""
        n, out, state, fleet = len(self.aircraft), [], self._state, self.aircraft
        for _ in range(count):
            out.append(state(fleet[self._cursor], t))
            self._cursor = (self._cursor + 1) % n
        return out

    def _state(self, ac: _Aircraft, t: float, sin=math.sin, cos=math.cos, atan2=math.atan2,
               sqrt=math.sqrt, deg=180.0 / math.pi) -> dict:
        # Hot path (~50,000 calls/s in benchmarks): plain arithmetic, math functions bound as locals.
        leg = ac.leg
        if t >= leg.end:
            while t >= leg.end:
                self._next_leg(ac)
                leg = ac.leg
        on_ground, vr, baro, geo = True, None, None, None
        if t < leg.t_cruise:
            if t < leg.t_roll:                          # taxi out
                v = leg.v_taxi
                s = v * (t - leg.start)
            elif t < leg.t_climb:                       # take-off roll, accelerating
                tau = t - leg.t_roll
                v = leg.v_taxi + leg.acc_roll * tau
                s = leg.s_roll + (leg.v_taxi + v) * 0.5 * tau
            else:                                       # climb
                tau = t - leg.t_climb
                v = leg.v_rotate + leg.acc_climb * tau
                s = leg.s_climb + (leg.v_rotate + v) * 0.5 * tau
                alt = leg.elev_origin + leg.climb_rate * tau
                on_ground, vr, baro, geo = False, leg.climb_rate, round(alt, 2), round(alt * GEO_FACTOR, 2)
            v = round(v, 2)
        elif t < leg.t_desc:                            # cruise: every value precomputed
            v, vr, baro, geo, on_ground = leg.v_cruise, 0.0, leg.cruise_alt, leg.cruise_geo_alt, False
            s = leg.s_cruise + v * (t - leg.t_cruise)
        elif t < leg.t_land:                            # descent and approach
            tau = t - leg.t_desc
            v = leg.v_cruise + leg.acc_descent * tau
            s = leg.s_desc + (leg.v_cruise + v) * 0.5 * tau
            alt = leg.cruise_alt - leg.descent_rate * tau
            on_ground, vr, baro, geo = False, -leg.descent_rate, round(alt, 2), round(alt * GEO_FACTOR, 2)
            v = round(v, 2)
        elif t < leg.t_taxi_in:                         # landing roll, braking
            tau = t - leg.t_land
            v = leg.v_approach + leg.acc_landing * tau
            s = leg.s_land + (leg.v_approach + v) * 0.5 * tau
            v = round(v, 2)
        elif t < leg.t_arrive:                          # taxi in
            v = leg.v_exit
            s = leg.s_taxi_in + v * (t - leg.t_taxi_in)
        else:                                           # parked at the gate until the next leg
            v, s = 0.0, leg.distance

        # Point at fraction s/distance along the great circle (slerp), and its direction of travel.
        ang = leg.angle * (s / leg.distance)
        rest = leg.angle - ang
        ka, kb = sin(rest) / leg.sin_angle, sin(ang) / leg.sin_angle
        ax, ay, az = leg.a
        bx, by, bz = leg.b
        x, y, z = ka * ax + kb * bx, ka * ay + kb * by, ka * az + kb * bz
        r = sqrt(x * x + y * y)
        da, db = -cos(rest), cos(ang)  # d(position)/d(angle): the direction of travel
        dx, dy, dz = da * ax + db * bx, da * ay + db * by, da * az + db * bz
        track = (atan2(dy * x - dx * y, dz * r * r - z * (dx * x + dy * y)) * deg) % 360.0
        ts = int(t)
        return {
            "icao24": ac.icao24, "callsign": leg.callsign, "origin_country": ac.country,
            "time_position": ts, "last_contact": ts,
            "longitude": round(atan2(y, x) * deg, 5), "latitude": round(atan2(z, r) * deg, 5),
            "baro_altitude": baro, "on_ground": on_ground, "velocity": v,
            "true_track": round(track, 2), "vertical_rate": vr,
            "sensors": None, "geo_altitude": geo,
            "squawk": self._emergency_squawk(ac.index, t) or leg.squawk, "spi": False, "position_source": 0, "category": ac.category,
            "source": "synthetic", "fetched_at": t,
        }
