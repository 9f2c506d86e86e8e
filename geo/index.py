"""SectorIndex: which sector a lon/lat point belongs to, answered in memory.

The border rule
---------------
A point belongs to a sector when the sector **covers** it: interior *or*
boundary. A point on a border shared by several sectors (an edge or a vertex) is
covered by all of them; the one with the lexicographically smallest ``code``
wins (plain code-point order, as Python's ``min`` and SQL's ``COLLATE "C"``).
So no point of the area falls between two sectors, and every answer is
deterministic and reproducible in SQL (see :data:`SQL_RULE`)::

    SELECT code FROM sector
     WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
     ORDER BY code COLLATE "C" LIMIT 1

A point outside every sector goes to the sector with the nearest boundary, if
that boundary is within ``tolerance_m`` metres (geodesic, WGS84); ``method`` is
then ``'nearest'``. Farther away, the answer is None (the caller puts the
appeal in the unrouted queue). The nearest boundary is found in a local plane
(longitude scaled by the cosine of the sectors' middle latitude; ties again go
to the smallest code) and its distance is measured on the ellipsoid: exact for
the distance, and for the choice exact enough for a city, where that scale
varies by well under 1 % across the area.

How it is fast
--------------
Construction lays a uniform grid (about 65,000 cells) over the sectors' bounds
widened by the tolerance, and classifies every cell with vectorised STRtree
queries over the prepared polygons. Cell boxes are grown by a hair (1e-9
degree) so that float rounding of a point's cell can never matter:

* inside exactly one sector and touching no other: the answer is that sector;
* touching no sector and farther than the tolerance from all: the answer is None;
* otherwise: the sectors touching the cell, tested in code order with GEOS's
  robust prepared point-in-polygon test (``shapely.intersects_xy``, which for
  a point is exactly "covers"), then the nearest search among the sectors
  within tolerance of the cell.

Most points fall in the first two kinds of cell and cost one table lookup;
points beyond the grid are farther than the tolerance from every sector.
:meth:`SectorIndex.lookup_many` runs the same steps over numpy arrays with the
same float operations, so it returns exactly what :meth:`SectorIndex.lookup`
returns, point by point.

Threads: GEOS prepared geometries build some structures lazily and that is
not thread-safe (libgeos/geos#825), so the constructor runs one query per
polygon to build them up front; afterwards lookups only read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.distance import GEOD

__all__ = ["SQL_RULE", "SQL_RULE_SQLITE", "BatchMatches", "SectorIndex", "SectorMatch"]

#: The border rule in PostgreSQL/PostGIS. ``COLLATE "C"`` makes ORDER BY compare
#: code points like Python does; a linguistic collation (en_US, ru_RU, ICU) would
#: ignore ``-``/``_`` and case at first level and could pick another sector.
SQL_RULE = (
    "SELECT code FROM sector"
    " WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
    ' ORDER BY code COLLATE "C" LIMIT 1'
)

#: The same rule in SQLite/SpatiaLite, whose default BINARY collation already
#: compares code points (SQLite has no collation named "C").
SQL_RULE_SQLITE = (
    "SELECT code FROM sector"
    " WHERE ST_Covers(geom, MakePoint(:lon, :lat, 4326))"
    " ORDER BY code LIMIT 1"
)

# Safety factor on the tolerance margins of the grid (see _build_grid).
_MARGIN_FACTOR = 1.05
# Target number of grid cells: a ~256 x 256 grid builds in a fraction of a
# second and leaves a few percent of a city's cells on a border.
_GRID_CELLS = 65_536
_MAX_CELLS_PER_AXIS = 4096
# Cells per side of the blocks that are classified first (see _build_grid).
_BLOCK = 4
# Point x segment matrices of the nearest search are cut to this many elements.
_CHUNK_ELEMENTS = 1 << 20

# Cell values of the grid besides a sector position (>= 0).
_FAR, _WORK = -1, -2
_NEAREST = 2
# lookup_many's methods by code 0 / 1 / 2; object dtype so each is a plain str.
_METHOD_NAMES = np.array(["", "covers", "nearest"], dtype=object)


@dataclass(frozen=True, slots=True)
class SectorMatch:
    """The sector a point was routed to.

    ``method`` is ``'covers'`` (the sector covers the point; ``distance_m`` is
    0.0) or ``'nearest'`` (the point is outside every sector and this one's
    boundary is ``distance_m`` metres away, within the index's tolerance).
    """

    code: str
    method: Literal["covers", "nearest"]
    distance_m: float


class BatchMatches(NamedTuple):
    """Result of :meth:`SectorIndex.lookup_many`, one entry per input point.

    ``codes``: object array of the sector code (str), or None for no sector.
    ``methods``: object array of ``'covers'``, ``'nearest'`` or ``''`` (no sector).
    ``distances_m``: float array; 0.0 for covers, metres for nearest, NaN for none.
    """

    codes: np.ndarray
    methods: np.ndarray
    distances_m: np.ndarray


class SectorIndex:
    """In-memory index answering "which sector covers (lon, lat)" (see module docstring).

    ``sectors`` is an iterable of ``(code, geometry)`` pairs or of objects with
    ``code`` and ``geometry`` attributes (e.g. :class:`geo.SectorFeature`);
    geometries are lon/lat Polygons or MultiPolygons. Codes must be unique
    non-empty strings. ``tolerance_m`` is how far outside every sector a point
    may be and still be given to the nearest one (0 disables it).

    The index does not validate the sectors (that is :mod:`geo.sectors`' job):
    if they overlap, the border rule still gives every point one answer.
    It is immutable once built and safe to share between threads.
    """

    def __init__(
        self,
        sectors: Iterable[tuple[str, BaseGeometry]] | Iterable[Any],
        tolerance_m: float = 150.0,
    ) -> None:
        tolerance_m = float(tolerance_m)
        if not (math.isfinite(tolerance_m) and tolerance_m >= 0.0):
            raise ValueError(f"tolerance_m must be a finite number >= 0, got {tolerance_m!r}")
        pairs = sorted(_as_pairs(sectors), key=lambda p: p[0])
        if not pairs:
            raise ValueError("a SectorIndex needs at least one sector")
        for (a, _), (b, _) in itertools.pairwise(pairs):
            if a == b:
                raise ValueError(f"duplicate sector code {a!r}")

        self._tolerance_m = tolerance_m
        # Everything below is indexed by position in code order, so "the first
        # sector that covers the point" is "the smallest code that covers it".
        self._codes: tuple[str, ...] = tuple(code for code, _ in pairs)
        # Copies (exact, via WKB), so that preparing them leaves the caller's objects alone.
        self._geoms = shapely.from_wkb(shapely.to_wkb([geom for _, geom in pairs]))
        shapely.prepare(self._geoms)
        for geom in self._geoms:
            # Builds GEOS's lazy point-in-area index now, before any thread shares it.
            shapely.intersects_xy(geom, geom.bounds[0], geom.bounds[1])
        self._tree = shapely.STRtree(self._geoms)
        self._bounds = tuple(float(v) for v in shapely.total_bounds(self._geoms))
        self._by_code = dict(zip(self._codes, self._geoms, strict=True))

        # The local plane of the nearest search: x = lon * kx, y = lat.
        mid_lat = (self._bounds[1] + self._bounds[3]) / 2.0
        self._kx = max(math.cos(math.radians(mid_lat)), 1e-6)
        self._edges = [_edges(geom, self._kx) for geom in self._geoms]

        # Shared, immutable answers: a covers hit allocates nothing.
        self._covers_match = tuple(SectorMatch(code, "covers", 0.0) for code in self._codes)
        self._code_table = np.array([*self._codes, None], dtype=object)  # index -1 -> None
        self._build_grid()

    # --- public -------------------------------------------------------------------------------

    @property
    def codes(self) -> tuple[str, ...]:
        """The sector codes, sorted (the tie-break order)."""
        return self._codes

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of all sectors."""
        return self._bounds  # type: ignore[return-value]

    @property
    def tolerance_m(self) -> float:
        """How far (metres) outside every sector a point is still given to the nearest one."""
        return self._tolerance_m

    def geometry(self, code: str) -> BaseGeometry:
        """The geometry of the sector ``code`` (KeyError if unknown)."""
        return self._by_code[code]

    def __len__(self) -> int:
        return len(self._codes)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __repr__(self) -> str:
        return f"SectorIndex({len(self)} sectors, tolerance_m={self._tolerance_m:g})"

    def lookup(self, lon: float, lat: float) -> SectorMatch | None:
        """The sector for one point (see the border rule), or None.

        Raises ValueError if lon/lat are not finite or out of range.
        """
        x = float(lon)
        y = float(lat)
        # False for NaN too, so this one test also rejects non-finite input.
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            raise ValueError(f"lon/lat out of range or not finite: {lon!r}, {lat!r}")
        # The cell, computed with exactly the float operations lookup_many uses
        # (subtract, multiply, clip to [-1, n], add 1, truncate a value >= 0):
        # both always land in the same cell of the padded grid.
        fx = (x - self._gx0) * self._gsx
        fy = (y - self._gy0) * self._gsy
        fx = -1.0 if fx < -1.0 else (self._fnx if fx > self._fnx else fx)
        fy = -1.0 if fy < -1.0 else (self._fny if fy > self._fny else fy)
        entry = self._cells[int(fy + 1.0) * self._stride + int(fx + 1.0)]
        if entry is None or entry.__class__ is SectorMatch:
            return entry
        candidates, near_row = entry
        for s in candidates:
            if shapely.intersects_xy(self._geoms[s], x, y):
                return self._covers_match[s]
        if near_row is None:
            return None
        best_s, best_d = self._nearest(np.array([x]), np.array([y]), near_row)
        if best_s[0] < 0:
            return None
        return SectorMatch(self._codes[best_s[0]], "nearest", float(best_d[0]))

    def lookup_many(self, lons: Any, lats: Any) -> BatchMatches:
        """Vectorised :meth:`lookup` over 1-D arrays of lon and lat; same answers, point by point.

        Returns a :class:`BatchMatches` (codes, methods, distances_m). Raises
        ValueError if the arrays differ in length or any value is not finite or
        out of range (as :meth:`lookup` would for that point).
        """
        xs = np.ascontiguousarray(lons, dtype=np.float64).reshape(-1)
        ys = np.ascontiguousarray(lats, dtype=np.float64).reshape(-1)
        if xs.shape != ys.shape:
            raise ValueError(f"lons and lats differ in length: {xs.size} != {ys.size}")
        bad = ~((xs >= -180.0) & (xs <= 180.0) & (ys >= -90.0) & (ys <= 90.0))
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"point {k}: lon/lat out of range or not finite: {xs[k]!r}, {ys[k]!r}")

        # One gather classifies every point: sector position, _FAR or _WORK.
        fx = xs - self._gx0
        fx *= self._gsx
        np.clip(fx, -1.0, self._fnx, out=fx)
        fx += 1.0
        fy = ys - self._gy0
        fy *= self._gsy
        np.clip(fy, -1.0, self._fny, out=fy)
        fy += 1.0
        cell = fy.astype(np.int32)
        cell *= self._stride
        cell += fx.astype(np.int32)
        del fx, fy
        sector = self._cellval[cell]

        work = np.flatnonzero(sector == _WORK)
        nearest = np.empty(0, dtype=np.intp)
        near_d = np.empty(0)
        if work.size:
            rows = self._workrow[cell[work]]
            wx, wy = xs[work], ys[work]
            result = np.full(work.size, _FAR, dtype=np.int32)
            open_ = np.ones(work.size, dtype=bool)
            # Candidates in code order: the first sector covering a point is its answer.
            for s in range(len(self._codes)):
                sel = np.flatnonzero(open_ & self._cand[rows, s])
                if sel.size == 0:
                    continue
                hit = sel[shapely.intersects_xy(self._geoms[s], wx[sel], wy[sel])]
                result[hit] = s
                open_[hit] = False
            rest = np.flatnonzero(open_)
            if rest.size:
                near_rows = self._near[rows[rest]]
                has_near = near_rows.any(axis=1)
                rest, near_rows = rest[has_near], near_rows[has_near]
                best_s, best_d = self._nearest(wx[rest], wy[rest], near_rows)
                found = best_s >= 0
                result[rest[found]] = best_s[found]
                nearest = work[rest[found]]
                near_d = best_d[found]
            sector[work] = result

        covered = sector >= 0
        method = covered.view(np.int8).copy()
        method[nearest] = _NEAREST
        dist = np.where(covered, 0.0, np.nan)
        dist[nearest] = near_d
        return BatchMatches(self._code_table[sector], _METHOD_NAMES[method], dist)

    # --- internals ----------------------------------------------------------------------------

    def _nearest(
        self, xs: np.ndarray, ys: np.ndarray, near_rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest sector within tolerance for points outside every sector.

        ``near_rows`` (bool, points x sectors, or one row for all points) says
        which sectors may be within tolerance. The sector with the nearest
        boundary in the local plane wins (ties: smallest code); it is kept if
        the geodesic distance to that boundary point is within tolerance.
        Returns the sector position (-1 for none) and that distance per point.
        The single and batch lookups both come here, so they agree to the bit.
        """
        n = xs.size
        near_rows = np.broadcast_to(near_rows, (n, len(self._codes)))
        px = xs * self._kx
        best_s = np.full(n, -1, dtype=np.int64)
        best_d2 = np.full(n, np.inf)
        qx = np.empty(n)
        qy = np.empty(n)
        for s in range(len(self._codes)):
            sel = np.flatnonzero(near_rows[:, s])
            if sel.size == 0:
                continue
            d2, sx, sy = _nearest_on_edges(px[sel], ys[sel], self._edges[s])
            # Strictly closer only: on a tie the earlier (smaller) code stays.
            better = d2 < best_d2[sel]
            idx = sel[better]
            best_s[idx], best_d2[idx], qx[idx], qy[idx] = s, d2[better], sx[better], sy[better]
        dist = np.full(n, np.inf)
        # Only points whose plane distance could be within tolerance pay for a geodesic.
        maybe = np.flatnonzero((best_s >= 0) & (np.sqrt(best_d2) * self._conv <= self._tolerance_m))
        if maybe.size:
            _, _, d = GEOD.inv(xs[maybe], ys[maybe], qx[maybe] / self._kx, qy[maybe])
            dist[maybe] = d
        best_s[~(dist <= self._tolerance_m)] = -1
        return best_s, dist

    def _build_grid(self) -> None:
        """Classify the cells of a uniform grid over the sectors (see module docstring)."""
        minx, miny, maxx, maxy = self._bounds
        tol, kx = self._tolerance_m, self._kx
        nsec = len(self._codes)
        # A lower bound of metres per unit of the local plane over the whole
        # grid: a degree of latitude is >= 110,574 m, a degree of longitude
        # >= 111,319 m * cos(lat), and plane x is lon * kx.
        phi_hi = min(89.0, max(abs(miny), abs(maxy)) + tol / 100_000.0 + 1e-6)
        self._conv = 0.999 * min(110_574.0, 111_319.0 * math.cos(math.radians(phi_hi)) / kx)
        # Beyond these margins no point is within the tolerance of any sector.
        lat_margin = tol / self._conv * _MARGIN_FACTOR
        lon_margin = lat_margin / kx
        # Float rounding can put a point an ulp outside its cell; growing every
        # cell box by eps (still far below a millimetre) makes that harmless.
        eps = 1e-9 * max(1.0, abs(minx), abs(maxx), abs(miny), abs(maxy))
        gx0, gx1 = minx - lon_margin - eps, maxx + lon_margin + eps
        gy0, gy1 = miny - lat_margin - eps, maxy + lat_margin + eps

        # nx x ny cells, in blocks of _BLOCK x _BLOCK: blocks are classified
        # first, and only the cells of blocks on a border are classified again.
        aspect = (gx1 - gx0) * kx / (gy1 - gy0)
        bx = int(min(_MAX_CELLS_PER_AXIS // _BLOCK, max(1, round(math.sqrt(_GRID_CELLS * aspect) / _BLOCK))))
        by = int(min(_MAX_CELLS_PER_AXIS // _BLOCK, max(1, round(_GRID_CELLS / (bx * _BLOCK * _BLOCK)))))
        nx, ny = bx * _BLOCK, by * _BLOCK
        self._gx0, self._gy0 = gx0, gy0
        self._gsx, self._gsy = nx / (gx1 - gx0), ny / (gy1 - gy0)
        self._fnx, self._fny = float(nx), float(ny)
        # The grid is padded with one ring of far cells: a point left of the grid
        # is clipped to -1, +1 -> column 0; right of it -> column nx + 1.
        self._stride = nx + 2
        dx, dy = (gx1 - gx0) / nx, (gy1 - gy0) / ny
        ncell = nx * ny

        def cell_boxes(i0, j0, i1, j1):
            """Boxes from cell corner (i0, j0) to (i1, j1), grown by eps."""
            return (gx0 + i0 * dx - eps, gy0 + j0 * dy - eps, gx0 + i1 * dx + eps, gy0 + j1 * dy + eps)

        def classify(i0, j0, i1, j1):
            """Which sectors touch each box, and the sector covering it alone (or -1)."""
            boxes = shapely.box(*cell_boxes(i0, j0, i1, j1))
            touch = self._tree.query(boxes, predicate="intersects")
            hit = np.zeros((boxes.size, nsec), dtype=bool)
            hit[touch[0], touch[1]] = True
            alone = np.full(boxes.size, -1, dtype=np.int64)
            one = np.flatnonzero(hit.sum(axis=1) == 1)
            sole = np.argmax(hit[one], axis=1)
            covered = shapely.covers(self._geoms[sole], boxes[one])
            alone[one[covered]] = sole[covered]
            return hit, alone

        # Blocks. A cell inside a block touched by nothing is touched by nothing;
        # in a block covered by one sector alone, it is covered by that sector alone.
        bj, bi = np.divmod(np.arange(bx * by), bx)
        bhit, balone = classify(bi * _BLOCK, bj * _BLOCK, (bi + 1) * _BLOCK, (bj + 1) * _BLOCK)
        cand = bhit.reshape(by, bx, nsec).repeat(_BLOCK, axis=0).repeat(_BLOCK, axis=1)
        full_s = balone.reshape(by, bx).repeat(_BLOCK, axis=0).repeat(_BLOCK, axis=1)
        # Cells of the other touched blocks, one by one.
        refine = np.flatnonzero(bhit.any(axis=1) & (balone < 0))
        sub_j, sub_i = np.divmod(np.arange(_BLOCK * _BLOCK), _BLOCK)
        cj = (bj[refine, None] * _BLOCK + sub_j).ravel()
        ci = (bi[refine, None] * _BLOCK + sub_i).ravel()
        chit, calone = classify(ci, cj, ci + 1, cj + 1)
        cand[cj, ci] = chit
        full_s[cj, ci] = calone
        cand = cand.reshape(ncell, nsec)
        full_s = full_s.reshape(ncell)
        is_full = full_s >= 0
        full = np.flatnonzero(is_full)
        full_s = full_s[full]
        count = cand.sum(axis=1)
        jj, ii = np.divmod(np.arange(ncell), nx)

        # Sectors within tolerance of each cell. Coarse: a sector within the
        # margins of a cell touches one of the cells within that many cells of
        # it, so dilating "touches" by whole cells finds them all...
        near = cand.copy()
        if tol > 0.0:
            grid = near.reshape(ny, nx, nsec)
            for axis, reach in ((1, math.ceil(lon_margin / dx)), (0, math.ceil(lat_margin / dy))):
                src = grid.copy()
                for k in range(1, min(reach, grid.shape[axis] - 1) + 1):
                    lead = [slice(None)] * 3
                    lag = [slice(None)] * 3
                    lead[axis], lag[axis] = slice(k, None), slice(None, -k)
                    grid[tuple(lead)] |= src[tuple(lag)]
                    grid[tuple(lag)] |= src[tuple(lead)]
            # ...fine: keep those whose plane distance to the cell is within
            # tolerance (touching sectors are at distance 0 and stay).
            c, s = np.nonzero(near & ~cand & ~is_full[:, None])
            x0, y0, x1, y1 = cell_boxes(ii[c], jj[c], ii[c] + 1, jj[c] + 1)
            plane_boxes = shapely.box(x0 * kx, y0, x1 * kx, y1)
            plane_geoms = shapely.transform(self._geoms, lambda xy: xy * np.array([kx, 1.0]))
            shapely.prepare(plane_geoms)
            far = shapely.distance(plane_geoms[s], plane_boxes) * self._conv > tol
            near[c[far], s[far]] = False

        has_near = near.any(axis=1)
        work = np.flatnonzero(~is_full & ((count > 0) | has_near))
        padded = (jj + 1) * self._stride + (ii + 1)
        size = self._stride * (ny + 2)

        cellval = np.full(size, _FAR, dtype=np.int32)
        cellval[padded[full]] = full_s
        cellval[padded[work]] = _WORK
        workrow = np.full(size, -1, dtype=np.int32)
        workrow[padded[work]] = np.arange(work.size, dtype=np.int32)
        self._cellval, self._workrow = cellval, workrow
        self._cand, self._near = cand[work], near[work]

        # The same classification as Python objects for the single lookup: None
        # (far), a shared SectorMatch (full) or (candidates, near row or None).
        cells = np.full(size, None, dtype=object)
        cells[padded[full]] = np.array([*self._covers_match, None], dtype=object)[full_s]
        shared: dict[tuple[bytes, bytes], tuple[tuple[int, ...], np.ndarray | None]] = {}
        for c_pad, c in zip(padded[work].tolist(), work.tolist(), strict=True):
            key = (cand[c].tobytes(), near[c].tobytes())
            entry = shared.get(key)
            if entry is None:
                row = near[c].copy() if near[c].any() else None
                entry = (tuple(np.flatnonzero(cand[c]).tolist()), row)
                shared[key] = entry
            cells[c_pad] = entry
        self._cells: list[Any] = cells.tolist()


def _edges(geom: BaseGeometry, kx: float) -> tuple[np.ndarray, ...]:
    """The boundary segments of a (multi)polygon in the local plane, for the nearest search.

    Returns ``(ax, ay, vx, vy, inv_len2)``: start points, direction vectors and
    1 / squared length (0 for a repeated vertex, so it acts as a point).
    """
    starts, ends = [], []
    for ring in shapely.get_rings(shapely.get_parts(geom)):
        xy = shapely.get_coordinates(ring) * np.array([kx, 1.0])
        starts.append(xy[:-1])
        ends.append(xy[1:])
    a = np.concatenate(starts)
    v = np.concatenate(ends) - a
    len2 = v[:, 0] ** 2 + v[:, 1] ** 2
    inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
    return a[:, 0].copy(), a[:, 1].copy(), v[:, 0].copy(), v[:, 1].copy(), inv_len2


def _nearest_on_edges(
    px: np.ndarray, py: np.ndarray, edges: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For plane points, the squared distance to the nearest segment and that nearest point.

    Plain numpy, point x segment, in chunks that bound the memory used; each
    result depends only on its own point, so any batch gives the same numbers.
    """
    ax, ay, vx, vy, inv_len2 = edges
    n = px.size
    d2 = np.empty(n)
    qx = np.empty(n)
    qy = np.empty(n)
    step = max(1, _CHUNK_ELEMENTS // ax.size)
    for lo in range(0, n, step):
        x = px[lo : lo + step, None]
        y = py[lo : lo + step, None]
        wx = x - ax
        wy = y - ay
        t = np.clip((wx * vx + wy * vy) * inv_len2, 0.0, 1.0)
        ex = wx - t * vx  # from the nearest point of each segment to the point
        ey = wy - t * vy
        dd = ex * ex + ey * ey
        k = np.argmin(dd, axis=1)
        r = np.arange(k.size)
        d2[lo : lo + step] = dd[r, k]
        qx[lo : lo + step] = x[:, 0] - ex[r, k]
        qy[lo : lo + step] = y[:, 0] - ey[r, k]
    return d2, qx, qy


def _as_pairs(sectors: Iterable[Any]) -> list[tuple[str, BaseGeometry]]:
    """Normalise the constructor's input to checked ``(code, geometry)`` pairs."""
    pairs = []
    for item in sectors:
        if hasattr(item, "code") and hasattr(item, "geometry"):
            code, geom = item.code, item.geometry
        else:
            code, geom = item
        if not isinstance(code, str) or not code:
            raise ValueError(f"sector code must be a non-empty string, got {code!r}")
        if not isinstance(geom, BaseGeometry) or geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"sector {code!r}: geometry must be a Polygon or MultiPolygon, got {geom!r:.60}")
        if geom.is_empty:
            raise ValueError(f"sector {code!r}: geometry is empty")
        pairs.append((code, geom))
    return pairs
