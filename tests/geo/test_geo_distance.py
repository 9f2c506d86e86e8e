"""geo.distance: geodesic distances, the geofence, geodesic areas."""

from __future__ import annotations

import math

import pytest
from shapely.geometry import Polygon, box

from geo import geodesic_area_m2, geodesic_distance_m, within_geofence
from geo.distance import GEOD


def test_one_degree_of_latitude_at_the_equator():
    d = geodesic_distance_m(0.0, 0.0, 0.0, 1.0)
    assert d == pytest.approx(111_000, rel=0.005)
    assert d == pytest.approx(110_574.389, abs=0.01)  # WGS84 meridian degree at the equator


def test_one_degree_of_longitude_at_the_equator():
    assert geodesic_distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_319.491, abs=0.01)


def test_equatorial_antipodes_are_half_a_meridian_apart():
    # The shortest path between equatorial antipodes runs over a pole.
    assert geodesic_distance_m(0.0, 0.0, 180.0, 0.0) == pytest.approx(20_003_931.459, abs=0.01)


def test_distance_is_symmetric_and_zero_for_the_same_point():
    a = (68.2719, 43.2927)
    b = (68.2500, 43.3100)
    assert geodesic_distance_m(*a, *b) == pytest.approx(geodesic_distance_m(*b, *a), abs=1e-6)
    assert geodesic_distance_m(*a, *a) == 0.0


def test_short_distance_in_turkestan_matches_a_local_estimate():
    # 0.001 degree of latitude near 43.3 N is about 111.1 m.
    assert geodesic_distance_m(68.27, 43.29, 68.27, 43.291) == pytest.approx(111.1, abs=0.2)


@pytest.mark.parametrize(
    "args",
    [
        (math.nan, 0.0, 0.0, 0.0),
        (0.0, math.inf, 0.0, 0.0),
        (0.0, 0.0, 181.0, 0.0),
        (0.0, 0.0, 0.0, -90.5),
        ("x", 0.0, 0.0, 0.0),
        (None, 0.0, 0.0, 0.0),
    ],
)
def test_invalid_coordinates_raise(args):
    with pytest.raises(ValueError):
        geodesic_distance_m(*args)


def _east_of(lon, lat, metres):
    lon2, lat2, _ = GEOD.fwd(lon, lat, 90.0, metres)
    return lon2, lat2


def test_geofence_inside_min_radius():
    lon, lat = _east_of(68.2719, 43.2927, 80.0)
    inside, d = within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=10.0)
    assert inside
    assert d == pytest.approx(80.0, abs=0.01)


def test_geofence_outside_min_radius_with_good_accuracy():
    lon, lat = _east_of(68.2719, 43.2927, 150.0)
    inside, d = within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=10.0)
    assert not inside
    assert d == pytest.approx(150.0, abs=0.01)


def test_geofence_grows_with_poor_accuracy():
    lon, lat = _east_of(68.2719, 43.2927, 150.0)
    assert within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=200.0)[0]
    assert not within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=140.0)[0]


def test_geofence_unknown_accuracy_uses_min_radius():
    lon, lat = _east_of(68.2719, 43.2927, 99.0)
    assert within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=None)[0]
    assert not within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=None, min_radius_m=50.0)[0]


def test_geofence_boundary_is_inside():
    lon, lat = _east_of(68.2719, 43.2927, 120.0)
    _, d = within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=0.0)
    assert within_geofence(lon, lat, 68.2719, 43.2927, accuracy_m=d, min_radius_m=0.0) == (True, d)


@pytest.mark.parametrize("accuracy", [-1.0, math.nan, math.inf])
def test_geofence_rejects_bad_accuracy(accuracy):
    with pytest.raises(ValueError):
        within_geofence(68.27, 43.29, 68.27, 43.29, accuracy_m=accuracy)


def test_geofence_rejects_bad_radius_and_coordinates():
    with pytest.raises(ValueError):
        within_geofence(68.27, 43.29, 68.27, 43.29, accuracy_m=5.0, min_radius_m=-1.0)
    with pytest.raises(ValueError):
        within_geofence(math.nan, 43.29, 68.27, 43.29, accuracy_m=5.0)


def test_area_of_a_one_degree_cell_at_the_equator():
    # About 110.6 km x 111.3 km.
    assert geodesic_area_m2(box(0.0, 0.0, 1.0, 1.0)) == pytest.approx(12_308e6, rel=0.001)


def test_area_ignores_ring_orientation_and_subtracts_holes():
    ccw = box(10.0, 50.0, 10.01, 50.01)
    cw = Polygon(list(ccw.exterior.coords)[::-1])
    assert geodesic_area_m2(ccw) == pytest.approx(geodesic_area_m2(cw), rel=1e-12)
    outer = box(10.0, 50.0, 10.02, 50.02)
    hole = box(10.005, 50.005, 10.015, 50.015)
    holed = Polygon(outer.exterior.coords, [list(hole.exterior.coords)])
    expected = geodesic_area_m2(outer) - geodesic_area_m2(hole)
    assert geodesic_area_m2(holed) == pytest.approx(expected, rel=1e-9)
