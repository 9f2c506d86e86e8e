"""Spatial SQL that differs between PostGIS and SpatiaLite, behind one set of helpers.

Both store EPSG:4326 geometries in lon/lat order. The sector rule is the same
everywhere: a sector **covers** the point (boundary included), lowest code wins.
"""

from __future__ import annotations

from geoalchemy2.elements import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import func, literal
from sqlalchemy.sql.elements import ColumnElement

from server.extensions import db


def dialect() -> str:
    """``postgresql`` or ``sqlite`` for the session's current bind."""
    return db.session.get_bind().dialect.name


def point(lon: float, lat: float) -> WKTElement:
    """A bound EPSG:4326 point; geoalchemy2 turns it into the backend's geometry."""
    return WKTElement(f"POINT({float(lon)!r} {float(lat)!r})", srid=4326)


def point_expr(lon: float, lat: float) -> ColumnElement:
    """A point as a SQL expression, usable inside spatial functions."""
    if dialect() == "postgresql":
        return func.ST_SetSRID(func.ST_MakePoint(literal(float(lon)), literal(float(lat))), 4326)
    return func.MakePoint(literal(float(lon)), literal(float(lat)), 4326)


def covers(geom_col, lon: float, lat: float) -> ColumnElement:
    """``geom_col`` covers the point (boundary included): the sector rule in SQL."""
    return func.ST_Covers(geom_col, point_expr(lon, lat)) == (True if dialect() == "postgresql" else 1)


def within_m(geom_col, lon: float, lat: float, metres: float) -> ColumnElement:
    """``geom_col`` lies within ``metres`` (on the ellipsoid) of the point."""
    if dialect() == "postgresql":
        pt = point_expr(lon, lat)
        # The geometry box test uses the GiST index; the geography test is exact.
        deg = metres / 111_000.0 * 2.5
        return func.ST_DWithin(geom_col, pt, deg) & func.ST_DWithin(
            func.geography(geom_col), func.geography(pt), metres
        )
    return func.PtDistWithin(geom_col, point_expr(lon, lat), metres) == 1


def by_code(code_col):
    """Order by sector code byte-wise, as Python does (PostgreSQL's locale collation ignores '-', '_', case)."""
    return code_col.collate("C") if dialect() == "postgresql" else code_col


def in_bbox(geom_col, min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> ColumnElement:
    """``geom_col`` intersects the lon/lat box."""
    if dialect() == "postgresql":
        return geom_col.op("&&")(func.ST_MakeEnvelope(min_lon, min_lat, max_lon, max_lat, 4326))
    return func.MbrIntersects(geom_col, func.BuildMbr(min_lon, min_lat, max_lon, max_lat, 4326)) == 1


def lonlat(geom) -> tuple[float, float] | None:
    """A stored point as (lon, lat), or None."""
    if geom is None:
        return None
    pt = to_shape(geom)
    return (pt.x, pt.y)
