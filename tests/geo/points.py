"""Test points for sector lookups: interior, exact vertices, exact border points, outside.

Reusable by any test that checks an implementation of the border rule (the
in-memory SectorIndex, PostGIS, SpatiaLite) against another::

    from tests.geo.points import sample_points
    for lon, lat in sample_points(report.sectors, 2000, seed=7): ...

Border points are chosen so that every engine must see them *on* the border:
they lie exactly on a segment both in exact rational arithmetic (what GEOS's
robust predicates compute) and in naive double arithmetic (what PostGIS's
point-in-ring shortcut computes). A float "midpoint" that is a hair off the
segment would be legitimately classified differently by the two engines, so
such points are never produced.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

# Share of each kind of point in a sample (the rest are interior points).
VERTEX_SHARE = 0.10
EDGE_SHARE = 0.20
OUTSIDE_SHARE = 0.15

# Dyadic positions along a segment tried for an exact border point.
_FRACTIONS = [Fraction(k, 2**m) for m in range(1, 7) for k in range(1, 2**m, 2)]


def sample_points(
    features: Iterable[Any], n: int, seed: int = 0, with_kind: bool = False
) -> list[tuple[float, float]] | list[tuple[str, float, float]]:
    """``n`` reproducible (lon, lat) test points for a set of sectors.

    ``features`` are SectorFeature-like objects (``code``, ``geometry``) or
    ``(code, geometry)`` pairs. The mix: random interior points, exact
    vertices, points exactly on shared edges (and on the outer boundary), and
    points outside every sector, some within a few hundred metres of the area
    and some far. With ``with_kind`` each item is ``(kind, lon, lat)``, kind in
    ``interior``, ``vertex``, ``shared_edge``, ``outer_edge``, ``outside``.
    """
    geoms = [_geometry(f) for f in features]
    if not geoms:
        raise ValueError("no sectors")
    rng = random.Random(seed)
    union = shapely.union_all(geoms)
    shapely.prepare(union)

    n_vertex = round(n * VERTEX_SHARE)
    n_edge = round(n * EDGE_SHARE)
    n_outside = round(n * OUTSIDE_SHARE)
    n_interior = n - n_vertex - n_edge - n_outside

    out: list[tuple[str, float, float]] = []
    out += [("interior", x, y) for x, y in _interior(union, n_interior, rng)]
    vertices = sorted({xy for g in geoms for xy in _vertices(g)})
    out += [("vertex", *rng.choice(vertices)) for _ in range(n_vertex)]
    out += _edge_points(geoms, n_edge, rng)
    out += [("outside", x, y) for x, y in _outside(union, n_outside, rng)]
    rng.shuffle(out)
    if with_kind:
        return out
    return [(x, y) for _, x, y in out]


def exact_border_point(
    a: tuple[float, float], b: tuple[float, float], t: Fraction
) -> tuple[float, float] | None:
    """The float point at ``a + t (b - a)`` if it lies exactly on segment ab, else None.

    "Exactly" means: zero cross product in rational arithmetic, and zero with
    the naive double formula PostGIS uses, in both segment directions.
    """
    ft = float(t)
    p = (a[0] + ft * (b[0] - a[0]), a[1] + ft * (b[1] - a[1]))
    if not (min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])):
        return None
    if (a[0] == b[0] and p[0] == a[0]) or (a[1] == b[1] and p[1] == a[1]):
        return p  # on a vertical or horizontal segment: exact by construction
    # The cheap naive test first; the rational one only for the few that pass it.
    for p1, p2 in ((a, b), (b, a)):
        side = (p[0] - p1[0]) * (p2[1] - p1[1]) - (p2[0] - p1[0]) * (p[1] - p1[1])
        if side != 0.0:
            return None
    fa = [Fraction(v) for v in a]
    fb = [Fraction(v) for v in b]
    fp = [Fraction(v) for v in p]
    if (fb[0] - fa[0]) * (fp[1] - fa[1]) - (fb[1] - fa[1]) * (fp[0] - fa[0]) != 0:
        return None
    return p


def _geometry(feature: Any) -> BaseGeometry:
    """The geometry of a SectorFeature-like object or a (code, geometry) pair."""
    return feature.geometry if hasattr(feature, "geometry") else feature[1]


def _vertices(geom: BaseGeometry) -> list[tuple[float, float]]:
    """Every ring vertex of a (multi)polygon as float pairs."""
    return [tuple(xy) for xy in shapely.get_coordinates(geom).tolist()]


def _segments(geom: BaseGeometry) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The ring segments of a (multi)polygon, each with its ends in sorted order."""
    segs = []
    for ring in shapely.get_rings(shapely.get_parts(geom)):
        xy = [tuple(p) for p in shapely.get_coordinates(ring).tolist()]
        segs += [tuple(sorted((p, q))) for p, q in itertools.pairwise(xy) if p != q]
    return segs


def _edge_points(geoms: list[BaseGeometry], n: int, rng: random.Random) -> list[tuple[str, float, float]]:
    """Exact border points: two thirds on edges shared by two sectors, the rest on outer edges."""
    uses = Counter(seg for g in geoms for seg in set(_segments(g)))
    shared = sorted(s for s, c in uses.items() if c > 1)
    outer = sorted(s for s, c in uses.items() if c == 1)
    # For each segment, the exact points it offers (many segments offer none).
    options: dict[str, list[tuple[float, float]]] = {}
    for kind, segs in (("shared_edge", shared), ("outer_edge", outer)):
        options[kind] = [p for a, b in segs for t in _FRACTIONS if (p := exact_border_point(a, b, t))]
    out = []
    for i in range(n):
        want_shared = i % 3 != 2 and options["shared_edge"]
        kind = "shared_edge" if want_shared or not options["outer_edge"] else "outer_edge"
        if options[kind]:
            out.append((kind, *rng.choice(options[kind])))
    # Without any exact border point (unlikely) fall back to vertices, which are exact.
    while len(out) < n:
        x, y = rng.choice([v for g in geoms for v in _vertices(g)])
        out.append(("vertex", x, y))
    return out


def _interior(union: BaseGeometry, n: int, rng: random.Random) -> list[tuple[float, float]]:
    """Uniform random points covered by the union of the sectors."""
    minx, miny, maxx, maxy = union.bounds
    out: list[tuple[float, float]] = []
    while len(out) < n:
        xs = np.array([rng.uniform(minx, maxx) for _ in range(2 * (n - len(out)) + 8)])
        ys = np.array([rng.uniform(miny, maxy) for _ in range(xs.size)])
        inside = shapely.intersects_xy(union, xs, ys)
        out += list(zip(xs[inside].tolist(), ys[inside].tolist(), strict=True))
    return out[:n]


def _outside(union: BaseGeometry, n: int, rng: random.Random) -> list[tuple[float, float]]:
    """Points outside the union: half within ~500 m of its boundary, half anywhere around it."""
    minx, miny, maxx, maxy = union.bounds
    kx = math.cos(math.radians((miny + maxy) / 2))
    boundary = union.boundary
    out: list[tuple[float, float]] = []
    while len(out) < n:
        if len(out) % 2 == 0:
            base = boundary.interpolate(rng.random(), normalized=True)
            r = rng.uniform(0.0, 500.0) / 111_000.0
            ang = rng.uniform(0.0, 2 * math.pi)
            x, y = base.x + r * math.cos(ang) / kx, base.y + r * math.sin(ang)
        else:
            w, h = maxx - minx, maxy - miny
            x, y = rng.uniform(minx - w, maxx + w), rng.uniform(miny - h, maxy + h)
        if not shapely.intersects_xy(union, x, y):
            out.append((x, y))
    return out
