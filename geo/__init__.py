"""Geography for Jauap: sector files, the in-memory sector index, geodesic distances.

A plain Python package (no Flask, no database): arguments in, values out.
Coordinates are lon/lat degrees on WGS84 (EPSG:4326), in GeoJSON order.
"""

from geo.distance import geodesic_area_m2, geodesic_distance_m, within_geofence
from geo.index import SQL_RULE, SQL_RULE_SQLITE, BatchMatches, SectorIndex, SectorMatch
from geo.sectors import (
    SectorFeature,
    SectorFileError,
    ValidationReport,
    read_sector_file,
    validate_sector_collection,
)

__all__ = [
    "SQL_RULE",
    "SQL_RULE_SQLITE",
    "BatchMatches",
    "SectorFeature",
    "SectorFileError",
    "SectorIndex",
    "SectorMatch",
    "ValidationReport",
    "geodesic_area_m2",
    "geodesic_distance_m",
    "read_sector_file",
    "validate_sector_collection",
    "within_geofence",
]
