"""Distances and areas on the WGS84 ellipsoid, and the field geofence check.

All coordinates are lon/lat degrees (EPSG:4326, GeoJSON order). Distances and
areas are geodesic (pyproj's implementation of Karney's algorithms), so they are
correct to the millimetre anywhere on Earth, not only near Turkestan.
"""

from __future__ import annotations

import math

import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

__all__ = ["GEOD", "check_lon_lat", "geodesic_area_m2", "geodesic_distance_m", "within_geofence"]

#: The one ellipsoid every geodesic figure in ``geo`` is computed on.
GEOD = Geod(ellps="WGS84")


def check_lon_lat(lon: float, lat: float, what: str = "point") -> tuple[float, float]:
    """Return ``(lon, lat)`` as floats, or raise ValueError if not finite or out of range.

    ``what`` names the argument in the error message.
    """
    try:
        lon_f = float(lon)
        lat_f = float(lat)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: lon/lat must be numbers, got {lon!r}, {lat!r}") from exc
    # The chained comparisons are False for NaN, so one test rejects NaN, ±inf and out-of-range values.
    if not (-180.0 <= lon_f <= 180.0 and -90.0 <= lat_f <= 90.0):
        raise ValueError(f"{what}: lon/lat out of range or not finite: {lon_f!r}, {lat_f!r}")
    return lon_f, lat_f


def geodesic_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres between two lon/lat points on the WGS84 ellipsoid.

    Raises ValueError if a coordinate is not finite or out of range.
    """
    lon1, lat1 = check_lon_lat(lon1, lat1, "first point")
    lon2, lat2 = check_lon_lat(lon2, lat2, "second point")
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def within_geofence(
    lon: float,
    lat: float,
    target_lon: float,
    target_lat: float,
    accuracy_m: float | None,
    min_radius_m: float = 100.0,
) -> tuple[bool, float]:
    """Whether a reported position is inside the geofence around a target.

    The fence radius is ``max(min_radius_m, accuracy_m)``: a phone that reports a
    poor accuracy gets a fence as wide as its own uncertainty, and a precise one is
    still allowed ``min_radius_m`` (the appeal's own point is only approximate).
    ``accuracy_m`` of None means "unknown" and counts as 0.

    Returns ``(inside, distance_m)``. Raises ValueError for invalid coordinates or
    a negative / non-finite accuracy or radius.
    """
    acc = 0.0 if accuracy_m is None else float(accuracy_m)
    radius = float(min_radius_m)
    if not (math.isfinite(acc) and acc >= 0.0):
        raise ValueError(f"accuracy_m must be a finite number >= 0, got {accuracy_m!r}")
    if not (math.isfinite(radius) and radius >= 0.0):
        raise ValueError(f"min_radius_m must be a finite number >= 0, got {min_radius_m!r}")
    distance = geodesic_distance_m(lon, lat, target_lon, target_lat)
    return distance <= max(radius, acc), distance


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in square metres of a (multi)polygon on the WGS84 ellipsoid.

    Non-polygonal parts (lines, points in a GeometryCollection) count as zero.
    """
    total = 0.0
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            # pyproj adds the signed areas of the rings, so it needs the exterior
            # counter-clockwise and the holes clockwise to subtract them.
            area, _ = GEOD.geometry_area_perimeter(orient(part, 1.0))
            total += abs(area)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            total += geodesic_area_m2(part)
    return total
