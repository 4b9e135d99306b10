"""Geofence geometry: inside/outside, holes, edges and vertices, the antimeridian, floor/ceiling,
and the reasons an invalid GeoJSON file is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flight_domain.geofence import GeofenceError, fences_containing, parse_fences

ROOT = Path(__file__).resolve().parents[2]


def square(lon0, lat0, lon1, lat1):
    return [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def feature(name, geometry, **properties):
    return {"type": "Feature", "properties": {"name": name, **properties}, "geometry": geometry}


def one(geometry, **properties):
    return parse_fences(collection(feature("F", geometry, **properties)))[0]


def test_point_inside_and_outside_a_square():
    # GIVEN a 2 x 2 degree square
    fence = one({"type": "Polygon", "coordinates": [square(0, 50, 2, 52)]})
    # THEN its middle is inside and points beyond each side are not
    assert fence.contains(1, 51)
    for lon, lat in [(-0.1, 51), (2.1, 51), (1, 49.9), (1, 52.1), (100, 51)]:
        assert not fence.contains(lon, lat), (lon, lat)


def test_points_on_edges_and_vertices_are_inside():
    fence = one({"type": "Polygon", "coordinates": [square(0, 50, 2, 52)]})
    for lon, lat in [(0, 51), (2, 51), (1, 50), (1, 52), (0, 50), (2, 52)]:
        assert fence.contains(lon, lat), (lon, lat)


def test_a_concave_polygon():
    # GIVEN a U shape open to the north
    u = [[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3], [0, 0]]
    fence = one({"type": "Polygon", "coordinates": [u]})
    assert fence.contains(0.5, 2) and fence.contains(2.5, 2) and fence.contains(1.5, 0.5)
    assert not fence.contains(1.5, 2)  # in the notch of the U


def test_a_point_in_a_hole_is_outside_but_the_holes_edge_is_inside():
    # GIVEN a ring: 0..10 with a 4..6 hole (e.g. a control zone around, but not over, an airport)
    fence = one({"type": "Polygon", "coordinates": [square(0, 0, 10, 10), square(4, 4, 6, 6)]})
    assert fence.contains(2, 2)
    assert not fence.contains(5, 5)
    assert fence.contains(4, 5)  # on the hole's edge: the boundary belongs to the fence


def test_multipolygon_with_a_hole_in_one_part():
    fence = one({"type": "MultiPolygon", "coordinates": [
        [square(0, 0, 1, 1)],
        [square(10, 10, 20, 20), square(14, 14, 16, 16)],
    ]})
    assert fence.contains(0.5, 0.5) and fence.contains(11, 11)
    assert not fence.contains(15, 15) and not fence.contains(5, 5)


@pytest.mark.parametrize("ring", [
    square(170, -10, 190, 10),                                               # continuous longitudes
    [[170, -10], [-170, -10], [-170, 10], [170, 10], [170, -10]],            # a jump at the antimeridian
    [[-190, -10], [-170, -10], [-170, 10], [-190, 10], [-190, -10]],         # continuous, the other way
])
def test_a_fence_across_the_antimeridian(ring):
    fence = one({"type": "Polygon", "coordinates": [ring]})
    for lon in (175, 179.999, 180, -180, -179.5, -175):
        assert fence.contains(lon, 0), lon
    for lon in (165, -165, 0, 5):
        assert not fence.contains(lon, 0), lon


def test_a_fence_split_at_the_antimeridian_as_rfc_7946_asks():
    fence = one({"type": "MultiPolygon", "coordinates": [[square(170, -10, 180, 10)],
                                                         [square(-180, -10, -170, 10)]]})
    for lon in (175, 180, -180, -175):
        assert fence.contains(lon, 5), lon
    assert not fence.contains(-165, 5)


def test_a_hole_across_the_antimeridian():
    fence = one({"type": "Polygon", "coordinates": [square(160, -20, 200, 20),
                                                     [[175, -5], [-175, -5], [-175, 5], [175, 5], [175, -5]]]})
    assert fence.contains(165, 0)
    assert not fence.contains(180, 0) and not fence.contains(-178, 0)
    assert fence.contains(-170, 0)


def test_floor_and_ceiling_are_inclusive():
    fence = one({"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}, floor_ft=1000, ceiling_ft=24500)
    assert fence.contains(0.5, 0.5, 1000) and fence.contains(0.5, 0.5, 24500) and fence.contains(0.5, 0.5, 5000)
    assert not fence.contains(0.5, 0.5, 999) and not fence.contains(0.5, 0.5, 24501)
    assert not fence.contains(0.5, 0.5, None)  # unknown altitude cannot be said to be between the limits


def test_a_fence_without_limits_takes_any_altitude():
    fence = one({"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]})
    assert fence.contains(0.5, 0.5, 45000) and fence.contains(0.5, 0.5, None)


def test_fences_containing_names_every_fence_the_point_is_in():
    fences = parse_fences(collection(
        feature("big", {"type": "Polygon", "coordinates": [square(0, 0, 10, 10)]}),
        feature("small", {"type": "Polygon", "coordinates": [square(4, 4, 6, 6)]}, ceiling_ft=10000),
        feature("far", {"type": "Polygon", "coordinates": [square(50, 50, 51, 51)]}),
    ))
    assert fences_containing(fences, 5, 5, 5000) == {"big", "small"}
    assert fences_containing(fences, 5, 5, 35000) == {"big"}
    assert fences_containing(fences, 20, 20, 5000) == frozenset()


@pytest.mark.parametrize("doc, reason", [
    ({"type": "Feature"}, "not a GeoJSON FeatureCollection"),
    (collection({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}}),
     "properties.name is missing"),
    (collection(feature("A", {"type": "Point", "coordinates": [0, 0]})), "is not Polygon or MultiPolygon"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})),
     "not closed"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]})), "at least 4 positions"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [square(0, 0, 1, 95)]})), "latitude 95.0 is outside"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}, floor_ft=5000, ceiling_ft=1000)),
     "floor_ft 5000.0 is above ceiling_ft 1000.0"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}),
                feature("A", {"type": "Polygon", "coordinates": [square(2, 2, 3, 3)]})), "used by another feature"),
    (collection(feature("A", {"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}, ceiling_ft="high")),
     "ceiling_ft: 'high' is not a finite number"),
])
def test_invalid_geojson_is_refused_with_the_reason(doc, reason):
    with pytest.raises(GeofenceError, match=reason):
        parse_fences(doc)


def test_the_shipped_default_fences_are_valid():
    fences = parse_fences(json.loads((ROOT / "infra" / "deploy" / "geofences" / "default.geojson").read_text()))
    assert len(fences) >= 4
    assert any(any(p.holes for p in f.polygons) for f in fences), "the defaults show a fence with a hole"
    assert any(any(p.bbox[2] > 180 or p.bbox[0] < -180 for p in f.polygons) for f in fences), \
        "the defaults show a fence across the antimeridian"
