"""Geofences: a GeoJSON FeatureCollection of named (multi)polygons read into fences, and point-in-fence.

Pure, standard library only. A fence is a Feature whose geometry is a Polygon or MultiPolygon
(RFC 7946 rings: [longitude, latitude] positions, first == last, the first ring outer, the others
holes) with ``properties.name`` (unique) and optional ``floor_ft`` / ``ceiling_ft``.

Rules, each tested:
- the boundary belongs to the fence: a point on an edge or a vertex (of the outer ring or of a
  hole) is inside, and so is an altitude equal to the floor or the ceiling;
- a point in a hole is outside;
- a ring that crosses the antimeridian works whether it is written with continuous longitudes
  (170 .. 190), with a jump (170 .. -170), or split into two polygons at +-180 as RFC 7946 asks:
  each ring is unwrapped to continuous longitudes and the point is tried at lon, lon +- 360;
- a bounding-box check runs before the ray cast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_FENCES = 1000
MAX_VERTICES = 200_000
MAX_NAME_LENGTH = 256  # an SNS message attribute value, and readable in an alert
_EPSILON = 1e-12

Ring = tuple[tuple[float, float], ...]


class GeofenceError(ValueError):
    """The GeoJSON cannot be used as geofences; str(exc) says where and why."""


@dataclass(frozen=True, slots=True)
class Polygon:
    outer: Ring                 # unwrapped: consecutive longitudes never differ by more than 180
    holes: tuple[Ring, ...]     # unwrapped into the outer ring's longitude range
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat of the outer ring


@dataclass(frozen=True, slots=True)
class Fence:
    name: str
    polygons: tuple[Polygon, ...]
    floor_ft: float | None = None
    ceiling_ft: float | None = None

    def contains(self, longitude: float, latitude: float, altitude_ft: float | None = None) -> bool:
        if altitude_ft is not None:
            if self.floor_ft is not None and altitude_ft < self.floor_ft:
                return False
            if self.ceiling_ft is not None and altitude_ft > self.ceiling_ft:
                return False
        elif self.floor_ft is not None or self.ceiling_ft is not None:
            return False  # a fence with vertical limits cannot say an aircraft of unknown altitude is in it
        return any(polygon_contains(p, longitude, latitude) for p in self.polygons)


def fences_containing(fences: tuple[Fence, ...], longitude: float, latitude: float,
                      altitude_ft: float | None) -> frozenset[str]:
    """Names of the fences the point is in."""
    return frozenset(f.name for f in fences if f.contains(longitude, latitude, altitude_ft))


# ---------------------------------------------------------------- geometry
def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    if x < min(x1, x2) - _EPSILON or x > max(x1, x2) + _EPSILON:
        return False
    if y < min(y1, y2) - _EPSILON or y > max(y1, y2) + _EPSILON:
        return False
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    scale = max(abs(x2 - x1), abs(y2 - y1), 1.0)
    return abs(cross) <= _EPSILON * scale


def ring_position(ring: Ring, x: float, y: float) -> int:
    """1 inside, 0 on the boundary, -1 outside (even-odd ray cast towards +x)."""
    inside = False
    for i in range(len(ring) - 1):
        x1, y1 = ring[i]
        x2, y2 = ring[i + 1]
        if _on_segment(x, y, x1, y1, x2, y2):
            return 0
        if (y1 > y) != (y2 > y):
            crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if crossing > x:
                inside = not inside
    return 1 if inside else -1


def polygon_contains(polygon: Polygon, longitude: float, latitude: float) -> bool:
    min_lon, min_lat, max_lon, max_lat = polygon.bbox
    if not min_lat <= latitude <= max_lat:
        return False
    for lon in (longitude, longitude + 360.0, longitude - 360.0):
        if not min_lon <= lon <= max_lon:
            continue
        where = ring_position(polygon.outer, lon, latitude)
        if where < 0:
            continue
        if where == 0:
            return True
        # Inside the outer ring: outside only if strictly inside a hole (a hole's edge is boundary).
        if not any(ring_position(hole, lon, latitude) > 0 for hole in polygon.holes):
            return True
    return False


def _unwrap(ring: list[tuple[float, float]], reference: float | None = None) -> Ring:
    """Shift longitudes by multiples of 360 so that consecutive ones differ by at most 180, and the
    first one lies within 180 of ``reference`` (the outer ring's start, for holes)."""
    first = ring[0][0]
    if reference is not None:
        first += 360.0 * round((reference - first) / 360.0)
    out = [(first, ring[0][1])]
    for lon, lat in ring[1:]:
        previous = out[-1][0]
        lon += 360.0 * round((previous - lon) / 360.0)
        out.append((lon, lat))
    return tuple(out)


# ---------------------------------------------------------------- GeoJSON
def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GeofenceError(f"{where}: {value!r} is not a finite number")
    return float(value)


def _ring(raw: object, where: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list) or len(raw) < 4:
        raise GeofenceError(f"{where}: a linear ring needs at least 4 positions")
    ring = []
    for i, position in enumerate(raw):
        if not isinstance(position, list) or len(position) < 2:
            raise GeofenceError(f"{where} position {i}: expected [longitude, latitude]")
        lon, lat = _number(position[0], f"{where} position {i} longitude"), \
            _number(position[1], f"{where} position {i} latitude")
        if not -360.0 <= lon <= 360.0:
            raise GeofenceError(f"{where} position {i}: longitude {lon} is outside -360..360")
        if not -90.0 <= lat <= 90.0:
            raise GeofenceError(f"{where} position {i}: latitude {lat} is outside -90..90")
        ring.append((lon, lat))
    if ring[0] != ring[-1]:
        raise GeofenceError(f"{where}: the ring is not closed (first position != last)")
    return ring


def _polygon(raw: object, where: str) -> Polygon:
    if not isinstance(raw, list) or not raw:
        raise GeofenceError(f"{where}: a polygon is a non-empty list of rings")
    outer = _unwrap(_ring(raw[0], f"{where} outer ring"))
    holes = tuple(_unwrap(_ring(r, f"{where} hole {i}"), outer[0][0]) for i, r in enumerate(raw[1:], 1))
    lons, lats = [p[0] for p in outer], [p[1] for p in outer]
    if max(lons) - min(lons) <= 0 or max(lats) - min(lats) <= 0:
        raise GeofenceError(f"{where}: the outer ring has no area")
    return Polygon(outer, holes, (min(lons), min(lats), max(lons), max(lats)))


def _limit(properties: dict, key: str, where: str) -> float | None:
    value = properties.get(key)
    return None if value is None else _number(value, f"{where} {key}")


def parse_fences(doc: object) -> tuple[Fence, ...]:
    """A GeoJSON FeatureCollection -> fences; raises GeofenceError naming the feature and the reason."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise GeofenceError("the document is not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise GeofenceError("features is not a list")
    if len(features) > MAX_FENCES:
        raise GeofenceError(f"{len(features)} features: at most {MAX_FENCES} fences are supported")
    fences, names, vertices = [], set(), 0
    for index, feature in enumerate(features):
        where = f"feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise GeofenceError(f"{where}: not a GeoJSON Feature")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise GeofenceError(f"{where}: properties is not an object")
        name = properties.get("name")
        if not isinstance(name, str) or not name.strip():
            raise GeofenceError(f"{where}: properties.name is missing (every fence needs a name)")
        name = name.strip()
        where = f"feature {index} ({name!r})"
        if len(name) > MAX_NAME_LENGTH:
            raise GeofenceError(f"{where}: the name is longer than {MAX_NAME_LENGTH} characters")
        if name in names:
            raise GeofenceError(f"{where}: the name is used by another feature")
        names.add(name)
        floor, ceiling = _limit(properties, "floor_ft", where), _limit(properties, "ceiling_ft", where)
        if floor is not None and ceiling is not None and floor > ceiling:
            raise GeofenceError(f"{where}: floor_ft {floor} is above ceiling_ft {ceiling}")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict):
            raise GeofenceError(f"{where}: geometry is missing")
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            polygons = (_polygon(coordinates, where),)
        elif kind == "MultiPolygon":
            if not isinstance(coordinates, list) or not coordinates:
                raise GeofenceError(f"{where}: a MultiPolygon is a non-empty list of polygons")
            polygons = tuple(_polygon(p, f"{where} polygon {i}") for i, p in enumerate(coordinates))
        else:
            raise GeofenceError(f"{where}: geometry type {kind!r} is not Polygon or MultiPolygon")
        vertices += sum(len(p.outer) + sum(len(h) for h in p.holes) for p in polygons)
        if vertices > MAX_VERTICES:
            raise GeofenceError(f"more than {MAX_VERTICES} vertices in all: simplify the fences")
        fences.append(Fence(name, polygons, floor, ceiling))
    return tuple(fences)
