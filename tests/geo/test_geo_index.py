"""geo.index: SectorIndex lookups, the border rule, lookup_many == lookup."""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box

from geo import SQL_RULE, SectorIndex, SectorMatch
from geo.distance import GEOD, geodesic_distance_m
from geo.index import SQL_RULE_SQLITE
from tests.geo.points import exact_border_point, sample_points

# --- helpers -------------------------------------------------------------------------------------


def oracle_covers(pairs, lon, lat):
    """The border rule by brute force: smallest code among the sectors covering the point."""
    pt = Point(lon, lat)
    codes = [code for code, geom in pairs if geom.covers(pt)]
    return min(codes) if codes else None


def oracle_distances_m(pairs, lon, lat):
    """Geodesic distance from a point to each sector's boundary, independently of the index.

    The boundaries (straight in lon/lat, as in PostGIS) are densified, then
    projected to an azimuthal equidistant projection centred on the point,
    where the distance from the centre is the geodesic distance.
    """
    aeqd = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +ellps=WGS84 +units=m", always_xy=True
    )
    out = {}
    for code, geom in pairs:
        dense = shapely.segmentize(geom.boundary, 0.0002)
        projected = shapely.transform(dense, lambda xy: np.column_stack(aeqd.transform(xy[:, 0], xy[:, 1])))
        out[code] = float(shapely.distance(projected, Point(0.0, 0.0)))
    return out


def as_tuple(match):
    return (None, "", math.nan) if match is None else (match.code, match.method, match.distance_m)


def assert_many_equals_single(index, lons, lats):
    many = index.lookup_many(lons, lats)
    for k, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
        code, method, dist = as_tuple(index.lookup(lon, lat))
        assert many.codes[k] == code, (k, lon, lat)
        assert many.methods[k] == method, (k, lon, lat)
        if math.isnan(dist):
            assert math.isnan(many.distances_m[k])
        else:
            assert many.distances_m[k] == dist  # bit for bit
    return many


def grid_2x2(x0, y0, size, codes):
    """Four squares meeting at one centre vertex, codes in the order SW, SE, NW, NE."""
    cells = [(0, 0), (1, 0), (0, 1), (1, 1)]
    return [
        (code, box(x0 + i * size, y0 + j * size, x0 + (i + 1) * size, y0 + (j + 1) * size))
        for code, (i, j) in zip(codes, cells, strict=True)
    ]


@pytest.fixture(scope="module")
def turkestan_pairs(turkestan_report):
    return [(s.code, s.geometry) for s in turkestan_report.sectors]


# --- construction ----------------------------------------------------------------------------------


def test_basic_properties(turkestan_index, turkestan_report):
    idx = turkestan_index
    assert len(idx) == 6
    assert idx.codes == ("S1", "S2", "S3", "S4", "S5", "S6")
    assert "S3" in idx and "S9" not in idx
    assert idx.bounds == pytest.approx((68.16, 43.24, 68.34, 43.35))
    assert idx.tolerance_m == 150.0
    assert idx.geometry("S2").equals(turkestan_report.sectors[1].geometry)
    assert "6 sectors" in repr(idx)


def test_accepts_pairs_generators_and_features(turkestan_report, turkestan_pairs):
    by_feature = SectorIndex(turkestan_report.sectors)
    by_pairs = SectorIndex(iter(reversed(turkestan_pairs)))
    by_polygons = SectorIndex((c, g.geoms[0]) for c, g in turkestan_pairs)
    for idx in (by_pairs, by_polygons):
        assert idx.codes == by_feature.codes
        assert idx.lookup(68.2719, 43.2927) == by_feature.lookup(68.2719, 43.2927)


@pytest.mark.parametrize(
    ("sectors", "message"),
    [
        ([], "at least one sector"),
        ([("A", box(0, 0, 1, 1)), ("A", box(1, 0, 2, 1))], "duplicate sector code 'A'"),
        ([("", box(0, 0, 1, 1))], "non-empty string"),
        ([(5, box(0, 0, 1, 1))], "non-empty string"),
        ([("A", Point(0, 0))], "Polygon or MultiPolygon"),
        ([("A", Polygon())], "empty"),
    ],
)
def test_bad_construction(sectors, message):
    with pytest.raises(ValueError, match=message):
        SectorIndex(sectors)


@pytest.mark.parametrize("tolerance", [-1.0, math.nan, math.inf])
def test_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance_m"):
        SectorIndex([("A", box(0, 0, 1, 1))], tolerance_m=tolerance)


def test_sql_rule_constants():
    assert "ST_Covers(geom" in SQL_RULE and 'ORDER BY code COLLATE "C" LIMIT 1' in SQL_RULE
    assert "ST_Covers(geom" in SQL_RULE_SQLITE and "ORDER BY code LIMIT 1" in SQL_RULE_SQLITE


# --- Turkestan: interior, vertices, edges --------------------------------------------------------------


def test_mausoleum_is_in_the_historic_centre(turkestan_index):
    assert turkestan_index.lookup(68.2719, 43.2927) == SectorMatch("S1", "covers", 0.0)


def test_interior_points(turkestan_index, turkestan_report):
    for s in turkestan_report.sectors:
        pt = s.geometry.representative_point()
        assert turkestan_index.lookup(pt.x, pt.y) == SectorMatch(s.code, "covers", 0.0)


def test_every_vertex_goes_to_the_smallest_covering_code(turkestan_index, turkestan_pairs):
    for _, geom in turkestan_pairs:
        for lon, lat in shapely.get_coordinates(geom).tolist():
            expected = oracle_covers(turkestan_pairs, lon, lat)
            assert expected is not None
            assert turkestan_index.lookup(lon, lat) == SectorMatch(expected, "covers", 0.0), (lon, lat)


def test_known_shared_vertices(turkestan_index):
    # The east corner of the centre is shared by S1, S2 and S6; the east tip of
    # the city by S2 and S6; the north radial's outer end by S2 and S3.
    assert turkestan_index.lookup(68.292, 43.292).code == "S1"
    assert turkestan_index.lookup(68.340, 43.290).code == "S2"
    assert turkestan_index.lookup(68.290, 43.350).code == "S2"
    assert turkestan_index.lookup(68.170, 43.310).code == "S4"  # outer vertex of S4 only


def test_points_on_shared_edges_go_to_the_smaller_code(turkestan_index, turkestan_pairs):
    # S5 and S6 share the radial (68.281, 43.278) - (68.278, 43.258) - (68.270, 43.242).
    a, b = (68.278, 43.258), (68.270, 43.242)
    checked = 0
    for k in range(1, 64):
        p = exact_border_point(a, b, Fraction(k, 64))
        if p is None:
            continue
        covering = [c for c, g in turkestan_pairs if g.covers(Point(p))]
        assert covering == ["S5", "S6"]
        assert turkestan_index.lookup(*p) == SectorMatch("S5", "covers", 0.0)
        checked += 1
    assert checked > 0


def test_sample_points_agree_with_the_brute_force_rule(turkestan_index, turkestan_pairs):
    pts = sample_points(turkestan_pairs, 3000, seed=11, with_kind=True)
    kinds = {k for k, _, _ in pts}
    assert kinds == {"interior", "vertex", "shared_edge", "outer_edge", "outside"}
    for kind, lon, lat in pts:
        expected = oracle_covers(turkestan_pairs, lon, lat)
        match = turkestan_index.lookup(lon, lat)
        if expected is not None:
            assert match == SectorMatch(expected, "covers", 0.0), (kind, lon, lat)
        else:
            assert kind == "outside"
            assert match is None or match.method == "nearest"


# --- outside points ---------------------------------------------------------------------------------


def test_just_outside_the_east_tip_goes_to_the_nearest_sector(turkestan_index):
    lon, lat, _ = GEOD.fwd(68.340, 43.290, 90.0, 50.0)  # 50 m due east of the tip (S2/S6 vertex)
    match = turkestan_index.lookup(lon, lat)
    assert match.code == "S2" and match.method == "nearest"  # tie between S2 and S6: smaller code
    assert match.distance_m == pytest.approx(50.0, abs=0.5)


def test_nearest_distance_matches_a_brute_force_distance(turkestan_index, turkestan_pairs):
    rng = random.Random(5)
    union = shapely.union_all([g for _, g in turkestan_pairs])
    seen = 0
    for _ in range(150):
        base = union.boundary.interpolate(rng.random(), normalized=True)
        lon, lat, _ = GEOD.fwd(base.x, base.y, rng.uniform(0, 360), rng.uniform(0, 300))
        if union.covers(Point(lon, lat)):
            continue
        dists = oracle_distances_m(turkestan_pairs, lon, lat)
        best = min(dists.values())
        match = turkestan_index.lookup(lon, lat)
        if best > 150.5:
            assert match is None, (lon, lat, best)
        elif best < 149.5:
            assert match is not None and match.method == "nearest"
            assert match.distance_m == pytest.approx(best, abs=0.5)
            assert dists[match.code] <= best + 0.5
            seen += 1
    assert seen > 20


def test_far_points_are_none(turkestan_index):
    far = [(68.25, 43.40), (68.10, 43.30), (0.0, 0.0), (-179.9, -89.9), (180.0, 90.0), (68.35, 43.29)]
    for lon, lat in far:
        assert turkestan_index.lookup(lon, lat) is None


def test_tolerance_changes_the_answer_outside(turkestan_report):
    lon, lat, _ = GEOD.fwd(68.160, 43.285, 270.0, 300.0)  # 300 m west of the west tip (S4)
    assert SectorIndex(turkestan_report.sectors).lookup(lon, lat) is None
    wide = SectorIndex(turkestan_report.sectors, tolerance_m=500.0).lookup(lon, lat)
    assert wide.code == "S4" and wide.method == "nearest" and wide.distance_m == pytest.approx(300.0, abs=1.0)
    assert SectorIndex(turkestan_report.sectors, tolerance_m=0.0).lookup(lon, lat) is None
    # Tolerance 0 still includes the boundary itself.
    assert SectorIndex(turkestan_report.sectors, tolerance_m=0.0).lookup(68.160, 43.285).code == "S4"


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(math.nan, 43.0), (68.0, math.nan), (math.inf, 43.0), (68.0, -math.inf), (181.0, 43.0), (68.0, 90.5)],
)
def test_invalid_input_raises(turkestan_index, lon, lat):
    with pytest.raises(ValueError):
        turkestan_index.lookup(lon, lat)
    with pytest.raises(ValueError, match="point 1"):
        turkestan_index.lookup_many([68.27, lon], [43.29, lat])


def test_lookup_accepts_numpy_scalars_and_ints(turkestan_index):
    assert turkestan_index.lookup(np.float64(68.2719), np.float32(43.2927)).code == "S1"
    assert turkestan_index.lookup(68, 43) is None


# --- lookup_many ------------------------------------------------------------------------------------


def test_lookup_many_agrees_with_lookup_on_10000_points(turkestan_index, turkestan_pairs):
    pts = sample_points(turkestan_pairs, 8000, seed=1)
    rng = np.random.default_rng(2)
    minx, miny, maxx, maxy = turkestan_index.bounds
    extra_x = rng.uniform(minx - 0.01, maxx + 0.01, 2000)
    extra_y = rng.uniform(miny - 0.01, maxy + 0.01, 2000)
    lons = np.concatenate([[p[0] for p in pts], extra_x])
    lats = np.concatenate([[p[1] for p in pts], extra_y])
    many = assert_many_equals_single(turkestan_index, lons, lats)
    methods = set(many.methods.tolist())
    assert methods == {"covers", "nearest", ""}


def test_lookup_many_result_types(turkestan_index):
    many = turkestan_index.lookup_many([68.2719, 0.0], [43.2927, 0.0])
    assert many.codes.dtype == object and many.codes.tolist() == ["S1", None]
    assert many.methods.tolist() == ["covers", ""]
    assert many.distances_m[0] == 0.0 and math.isnan(many.distances_m[1])
    codes, methods, distances = many  # a NamedTuple
    assert codes is many.codes and methods is many.methods and distances is many.distances_m


def test_lookup_many_empty_and_mismatched(turkestan_index):
    empty = turkestan_index.lookup_many([], [])
    assert empty.codes.shape == (0,) and empty.methods.shape == (0,) and empty.distances_m.shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        turkestan_index.lookup_many([68.27, 68.28], [43.29])


def test_lookup_many_is_vectorised(turkestan_index):
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = turkestan_index.bounds
    xs, ys = rng.uniform(minx, maxx, 200_000), rng.uniform(miny, maxy, 200_000)
    t0 = time.perf_counter()
    turkestan_index.lookup_many(xs, ys)
    # ~20 ms on a laptop; a Python loop would take seconds.
    assert time.perf_counter() - t0 < 1.5


# --- nothing assumes Turkestan -----------------------------------------------------------------------


def test_a_2x2_grid_elsewhere():
    # Southern and western hemisphere; codes whose code-point order differs from
    # a linguistic order ("B" < "a" < "a-1" < "b").
    pairs = grid_2x2(-70.70, -33.50, 0.02, ["b", "a", "a-1", "B"])
    idx = SectorIndex(pairs, tolerance_m=100.0)
    assert idx.codes == ("B", "a", "a-1", "b")
    # The centre vertex belongs to all four: "B" wins.
    assert idx.lookup(-70.68, -33.48) == SectorMatch("B", "covers", 0.0)
    # Shared edge between SW ("b") and SE ("a"): "a" wins.
    assert idx.lookup(-70.68, -33.49).code == "a"
    # Interior of each cell.
    assert idx.lookup(-70.69, -33.49).code == "b"
    assert idx.lookup(-70.67, -33.47).code == "B"
    # 50 m south of the SW corner: nearest, "b".
    lon, lat, _ = GEOD.fwd(-70.70, -33.50, 180.0, 50.0)
    m = idx.lookup(lon, lat)
    assert (m.code, m.method) == ("b", "nearest") and m.distance_m == pytest.approx(50.0, abs=0.2)
    assert idx.lookup(-70.70, -33.51) is None  # ~1.1 km south
    pts = sample_points(pairs, 3000, seed=4)
    assert_many_equals_single(idx, [p[0] for p in pts], [p[1] for p in pts])
    for lon, lat in pts:
        expected = oracle_covers(pairs, lon, lat)
        if expected is not None:
            assert idx.lookup(lon, lat).code == expected


def test_multipolygon_holes_and_enclaves():
    # "RING" has a hole filled by "CORE" and a detached island; "EDGE" touches it.
    hole = box(10.01, 50.01, 10.02, 50.02).exterior.coords
    ring = Polygon(box(10, 50, 10.03, 50.03).exterior.coords, [hole])
    island = box(10.05, 50.0, 10.06, 50.01)
    pairs = [
        ("RING", MultiPolygon([ring, island])),
        ("CORE", box(10.01, 50.01, 10.02, 50.02)),
        ("EDGE", box(10.03, 50.0, 10.04, 50.03)),
    ]
    idx = SectorIndex(pairs, tolerance_m=0.0)
    assert idx.lookup(10.015, 50.015).code == "CORE"
    assert idx.lookup(10.005, 50.005).code == "RING"
    assert idx.lookup(10.055, 50.005).code == "RING"  # the island
    assert idx.lookup(10.01, 50.015).code == "CORE"  # hole boundary: CORE < RING
    assert idx.lookup(10.03, 50.015).code == "EDGE"  # EDGE < RING
    assert idx.lookup(10.045, 50.005) is None  # between EDGE and the island, tolerance 0
    pts = sample_points(pairs, 2000, seed=9)
    assert_many_equals_single(idx, [p[0] for p in pts], [p[1] for p in pts])


def test_overlapping_sectors_still_get_one_answer():
    # The index does not validate: in an overlap the smallest code wins.
    pairs = [("Z", box(0, 0, 0.02, 0.02)), ("M", box(0.01, 0.0, 0.03, 0.02))]
    idx = SectorIndex(pairs)
    assert idx.lookup(0.015, 0.01).code == "M"
    assert idx.lookup(0.005, 0.01).code == "Z"
    assert idx.lookup(0.025, 0.01).code == "M"


def test_a_single_small_sector_near_the_antimeridian_and_poles():
    idx = SectorIndex([("N", box(179.9, 89.0, 180.0, 89.1))], tolerance_m=100.0)
    assert idx.lookup(179.95, 89.05).code == "N"
    assert idx.lookup(180.0, 89.1).code == "N"
    assert idx.lookup(0.0, 0.0) is None
    m = idx.lookup(179.95, 89.0995)
    assert m.code == "N" and m.method == "covers"
    lon, lat, _ = GEOD.fwd(179.95, 89.1, 0.0, 30.0)
    m = idx.lookup(lon, lat)
    assert m.method == "nearest" and m.distance_m == pytest.approx(30.0, abs=0.5)


def test_a_large_sector_set():
    # 20 x 20 sectors over 2 degrees: nothing depends on the sector count or size.
    pairs = [
        (f"G{i:02d}{j:02d}", box(30 + i * 0.1, 10 + j * 0.1, 30 + (i + 1) * 0.1, 10 + (j + 1) * 0.1))
        for i in range(20)
        for j in range(20)
    ]
    idx = SectorIndex(pairs)
    assert len(idx) == 400
    assert idx.lookup(30.05, 10.05).code == "G0000"
    assert idx.lookup(30.1, 10.1).code == "G0000"  # corner of four: smallest
    pts = sample_points(pairs, 2000, seed=2)
    many = assert_many_equals_single(idx, [p[0] for p in pts], [p[1] for p in pts])
    for k, (lon, lat) in enumerate(pts[:300]):
        expected = oracle_covers(pairs, lon, lat)
        if expected is not None:
            assert many.codes[k] == expected


# --- speed and threads ---------------------------------------------------------------------------


def test_single_lookup_is_fast(turkestan_index):
    rng = random.Random(8)
    minx, miny, maxx, maxy = turkestan_index.bounds
    pts = [(rng.uniform(minx, maxx), rng.uniform(miny, maxy)) for _ in range(3000)]
    times = []
    for lon, lat in pts:
        t0 = time.perf_counter_ns()
        turkestan_index.lookup(lon, lat)
        times.append(time.perf_counter_ns() - t0)
    # ~1 µs on a laptop; generous so a busy CI machine does not fail it.
    assert np.median(times) < 50_000


def test_concurrent_lookups_agree(turkestan_report):
    idx = SectorIndex(turkestan_report.sectors)
    pts = sample_points(turkestan_report.sectors, 4000, seed=6)
    expected = [as_tuple(idx.lookup(x, y)) for x, y in pts]

    def run(offset):
        return [as_tuple(idx.lookup(x, y)) for x, y in pts[offset:] + pts[:offset]]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [0, 1000, 2000, 3000]))
    for offset, got in zip([0, 1000, 2000, 3000], results, strict=True):
        rotated = expected[offset:] + expected[:offset]
        assert [g[:2] for g in got] == [e[:2] for e in rotated]


def test_geodesic_distance_of_the_fixture_points():
    # Sanity for the oracle used above: 0.001 degree of latitude near 43.3 N.
    assert geodesic_distance_m(68.27, 43.29, 68.27, 43.291) == pytest.approx(111.1, abs=0.2)


def test_the_callers_geometries_are_left_alone(turkestan_report):
    pairs = [(s.code, shapely.from_wkb(shapely.to_wkb(s.geometry))) for s in turkestan_report.sectors]
    idx = SectorIndex(pairs)
    assert not any(shapely.is_prepared(g) for _, g in pairs)
    assert all(idx.geometry(c).equals_exact(g, 0.0) for c, g in pairs)
