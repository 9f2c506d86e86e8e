"""The in-memory SectorIndex and the database's ST_Covers agree on every point."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from shapely.geometry import shape
from sqlalchemy import select

from geo import SectorIndex
from server import geosql
from server.extensions import db
from server.models import Sector
from server.services import routing
from tests.conftest import SECTOR_FILE

pytestmark = pytest.mark.usefixtures("db_session")


def sample_points(n: int, seed: int = 7) -> list[tuple[float, float]]:
    """Interior points, every vertex, shared-edge midpoints and outside points."""
    rng = random.Random(seed)
    features = json.loads(SECTOR_FILE.read_text())["features"]
    geoms = [shape(f["geometry"]) for f in features]
    pts: list[tuple[float, float]] = []
    for g in geoms:
        for poly in getattr(g, "geoms", [g]):
            coords = list(poly.exterior.coords)
            pts += coords
            pts += [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in itertools.pairwise(coords)]
    minx = min(g.bounds[0] for g in geoms) - 0.02
    miny = min(g.bounds[1] for g in geoms) - 0.02
    maxx = max(g.bounds[2] for g in geoms) + 0.02
    maxy = max(g.bounds[3] for g in geoms) + 0.02
    while len(pts) < n:
        pts.append((rng.uniform(minx, maxx), rng.uniform(miny, maxy)))
    return pts[:n]


def sql_sector(lon: float, lat: float) -> str | None:
    version = routing.current_version()
    return db.session.scalar(
        select(Sector.code).where(Sector.version == version, geosql.covers(Sector.geom, lon, lat))
        .order_by(geosql.by_code(Sector.code)).limit(1)
    )


def test_index_and_database_agree_on_10000_points(app):
    sectors = routing.current_sectors()
    # covers-only index (tolerance 0): the database rule has no "nearest" fallback
    from geoalchemy2.shape import to_shape

    index = SectorIndex([(s.code, to_shape(s.geom)) for s in sectors], tolerance_m=0)
    points = sample_points(10_000)
    mismatches = []
    geoms = [to_shape(s.geom) for s in sectors]
    from shapely.geometry import Point

    borders = sum(1 for lon, lat in points if sum(g.covers(Point(lon, lat)) for g in geoms) > 1)
    for lon, lat in points:
        match = index.lookup(lon, lat)
        mem = match.code if match else None
        sql = sql_sector(lon, lat)
        if mem != sql:
            mismatches.append((lon, lat, mem, sql))
    covered = sum(1 for lon, lat in points if index.lookup(lon, lat))
    assert mismatches == [], mismatches[:10]
    assert covered > 1000 and covered < len(points)  # both inside and outside points were tried
    assert borders > 50  # ties on shared edges and vertices were exercised


def test_shared_border_point_goes_to_lowest_code_in_both():
    features = json.loads(SECTOR_FILE.read_text())["features"]
    a, b = (shape(f["geometry"]) for f in features[:2])
    shared = a.boundary.intersection(b.boundary)
    if shared.is_empty:
        pytest.skip("first two sectors share no edge")
    p = shared.representative_point()
    codes = sorted(f["properties"]["code"] for f in features[:2])
    assert sql_sector(p.x, p.y) == codes[0]
    assert routing.locate(p.x, p.y).sector.code == codes[0]
