"""The offline map's land outlines: TopoJSON (npm world-atlas) to GeoJSON for a flat Leaflet map, and the
pinned tarball's integrity check (infra/web/map_assets.py)."""
from __future__ import annotations

import base64
import hashlib

from infra.web import map_assets


def _topology(arcs, geometries, transform=None):
    topology = {"type": "Topology", "arcs": arcs,
                "objects": {"countries": {"type": "GeometryCollection", "geometries": geometries}}}
    if transform:
        topology["transform"] = transform
    return topology


def test_two_countries_sharing_a_border_each_get_a_closed_ring():
    # GIVEN two unit squares side by side whose shared border is one arc (0), used forwards by A and
    # reversed (~0 = -1) by B, as TopoJSON stores shared borders
    arcs = [[[1, 0], [1, 1]],                          # the shared border, south to north
            [[1, 1], [0, 1], [0, 0], [1, 0]],          # the rest of A
            [[1, 0], [2, 0], [2, 1], [1, 1]]]          # the rest of B
    topology = _topology(arcs, [
        {"type": "Polygon", "arcs": [[0, 1]], "id": "A", "properties": {"name": "Aland"}},
        {"type": "Polygon", "arcs": [[2, ~0]], "id": "B", "properties": {"name": "Bland"}},
    ])
    # WHEN converted
    features = map_assets.topojson_to_geojson(topology, "countries")["features"]
    # THEN each ring is closed, with the joining points once, and the names and ids are kept
    a, b = features
    assert a["geometry"]["coordinates"] == [[[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]]]
    assert b["geometry"]["coordinates"] == [[[1, 0], [2, 0], [2, 1], [1, 1], [1, 0]]]
    assert (a["id"], a["properties"], b["properties"]["name"]) == ("A", {"name": "Aland"}, "Bland")


def test_quantised_delta_encoded_arcs_decode_to_degrees_rounded_to_the_data_precision():
    # GIVEN a quantised topology: positions are deltas of integers, scaled and translated
    transform = {"scale": [0.0036000360003600037, 0.0016925586033320105], "translate": [-180, -85.60903777459771]}
    arcs = [[[50000, 50000], [1000, 0], [0, 1000], [-1000, -1000]]]
    topology = _topology(arcs, [{"type": "MultiPolygon", "arcs": [[[0]]], "properties": {}}, {"type": None}], transform)
    # WHEN converted
    features = map_assets.topojson_to_geojson(topology, "countries")["features"]
    # THEN the points are the running sums in degrees, 3 decimals; a geometry-less feature is left out
    assert len(features) == 1
    assert features[0]["geometry"] == {"type": "MultiPolygon", "coordinates": [[[
        [0.002, -0.981], [3.602, -0.981], [3.602, 0.711], [0.002, -0.981]]]]}


def test_a_ring_across_the_antimeridian_continues_past_180_instead_of_spanning_the_world():
    # GIVEN an island straddling 180 degrees, as the data stores it for a globe (Fiji): 179.5 -> -179.5
    fiji = [[179.5, -16.0], [-179.5, -16.0], [-179.5, -17.0], [179.5, -17.0], [179.5, -16.0]]
    # WHEN made continuous for a flat map
    ring = map_assets.continuous_ring(fiji)
    # THEN it spans one degree, not 359, and is still closed
    assert ring == [[179.5, -16.0], [180.5, -16.0], [180.5, -17.0], [179.5, -17.0], [179.5, -16.0]]
    # the same going west first
    assert map_assets.continuous_ring([[-179.5, 1], [179.5, 1], [179.5, 2], [-179.5, 1]]) == \
        [[-179.5, 1], [-180.5, 1], [-180.5, 2], [-179.5, 1]]


def test_a_ring_around_the_pole_and_an_ordinary_ring_are_kept_as_they_are():
    # GIVEN Antarctica's shape: east along the coast from -180 to 180, back along the bottom edge
    antarctica = [[-180, -84.7], [-180, -70], [0, -69], [180, -70], [180, -84.7], [-180, -84.7]]
    square = [[0, 0], [1, 0], [1, 1], [0, 0]]
    # WHEN made continuous THEN nothing moves: unwrapped it would not close, its jump is the map's edge
    assert map_assets.continuous_ring(antarctica) == antarctica
    assert map_assets.continuous_ring(square) == square
    assert map_assets.continuous_ring([]) == []


def test_the_tarball_must_match_the_pinned_integrity():
    # GIVEN bytes and their sha512 in the npm registry's "integrity" form
    data = b"world-atlas tarball"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    # THEN the same bytes match, one changed byte does not
    assert map_assets._sri_matches(data, integrity)
    assert not map_assets._sri_matches(data + b"!", integrity)
    # and the pinned value is in that form
    assert map_assets.LAND_INTEGRITY.startswith("sha512-")
