"""Sectors: the current set as GeoJSON, and point lookup."""

from __future__ import annotations

from flask import jsonify
from geoalchemy2.shape import to_shape
from shapely.geometry import mapping

from server.api import bp
from server.api.outputs import GeoJSON, LookupOut, locale, sector_ref
from server.api.spec import endpoint
from server.schemas import LookupQuery
from server.services import routing


@bp.get("/sectors")
@endpoint(responses={200: GeoJSON}, tags=["sectors"])
def list_sectors():
    """The current sector set as a GeoJSON FeatureCollection (lon/lat, EPSG:4326)."""
    lang = locale()
    features = []
    for sector in routing.current_sectors():
        features.append({
            "type": "Feature",
            "id": sector.code,
            "geometry": mapping(to_shape(sector.geom)),
            "properties": {
                "code": sector.code,
                "name": sector.name(lang),
                "name_kk": sector.name_kk,
                "name_ru": sector.name_ru,
                "name_en": sector.name_en,
                "unit": sector.unit.code,
                "version": sector.version,
                "area_m2": round(sector.area_m2, 1),
            },
        })
    return jsonify({"type": "FeatureCollection", "features": features})


@bp.get("/sectors/lookup")
@endpoint(query=LookupQuery, responses={200: LookupOut}, tags=["sectors"])
def lookup_sector(query: LookupQuery):
    """Which sector covers a point (or the nearest within the tolerance)."""
    found = routing.locate(query.lon, query.lat)
    if found is None:
        return jsonify(LookupOut(sector=None, method=None, distance_m=None, unit=None).model_dump())
    return jsonify(LookupOut(sector=sector_ref(found.sector), method=found.method,
                             distance_m=round(found.distance_m, 1),
                             unit=found.sector.unit.name(locale())).model_dump())
