"""Benchmark: geo.SectorIndex against PostGIS, single points and a 1M-point batch.

    python bench/geo.py [--points 1000000] [--single 2000]
                        [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench]

Creates the database if missing, loads the sector file into ``bench_sector``
(GiST-indexed), then measures in one run:

* single-point lookup p50/p99: SectorIndex.lookup; an unprepared shapely loop
  (``poly.covers(Point)`` per sector, in Python); one PostGIS query per point
  over a persistent connection with a server-side prepared statement;
* a batch: SectorIndex.lookup_many against several in-database joins of the
  same points (COPYed into an UNLOGGED table), timing the join itself and
  reporting the load separately;
* agreement of SectorIndex with PostGIS on the batch (the covers answer;
  points outside every sector are counted separately);
* ratios, PASS/FAIL per goal, and a final JSON line with every figure.

Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Point

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/geo.py: with its own folder on sys.path, "import geo" would
# import itself. Put the repository root first instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench import _pg  # noqa: E402
from geo import SectorIndex, read_sector_file  # noqa: E402
from tests.geo.points import sample_points  # noqa: E402

SINGLE_SQL = (
    "SELECT code FROM bench_sector"
    " WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
    ' ORDER BY code COLLATE "C" LIMIT 1'
)

# In-database variants of the batch: (name, settings, query). Each query yields (id, code).
JOIN_DISTINCT = (
    "SELECT DISTINCT ON (p.id) p.id, s.code FROM bench_pts p JOIN {sectors} s ON ST_Covers(s.geom, p.geom)"
    ' ORDER BY p.id, s.code COLLATE "C"'
)
JOIN_GROUP = (
    'SELECT p.id, min(s.code COLLATE "C") AS code FROM bench_pts p'
    " JOIN {sectors} s ON ST_Covers(s.geom, p.geom) GROUP BY p.id"
)
LATERAL = (
    "SELECT p.id, (SELECT s.code FROM {sectors} s WHERE ST_Covers(s.geom, p.geom)"
    ' ORDER BY s.code COLLATE "C" LIMIT 1) AS code FROM bench_pts p'
)
JOIN_INTERSECTS = (
    # For a point, "intersects" is exactly "covers"; PostGIS may take another code path.
    "SELECT DISTINCT ON (p.id) p.id, s.code FROM bench_pts p"
    " JOIN {sectors} s ON ST_Intersects(s.geom, p.geom)"
    ' ORDER BY p.id, s.code COLLATE "C"'
)
DEFAULTS = "SET jit = DEFAULT; SET work_mem = DEFAULT"
# JIT only adds compile time to these queries; a large work_mem keeps the sort in memory.
TUNED = "SET jit = off; SET work_mem = '256MB'"
VARIANTS_BEFORE_POINT_INDEX = [
    ("DISTINCT ON join, server defaults", DEFAULTS, JOIN_DISTINCT, "bench_sector"),
    ("DISTINCT ON join, tuned session", TUNED, JOIN_DISTINCT, "bench_sector"),
    ("DISTINCT ON join, ST_Subdivide'd sectors", TUNED, JOIN_DISTINCT, "bench_sector_sub"),
    ("DISTINCT ON join with ST_Intersects", TUNED, JOIN_INTERSECTS, "bench_sector"),
    ("GROUP BY min() join, ST_Subdivide'd", TUNED, JOIN_GROUP, "bench_sector_sub"),
    ("correlated LIMIT 1 per point, ST_Subdivide'd", TUNED, LATERAL, "bench_sector_sub"),
]
VARIANTS_AFTER_POINT_INDEX = [
    ("DISTINCT ON join, GiST on points too", TUNED, JOIN_DISTINCT, "bench_sector"),
]

GOAL_SINGLE = 30.0
GOAL_BATCH = 5.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def percentiles(ns: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    p50, p99 = np.percentile(ns, [50, 99])
    return float(p50) / 1000.0, float(p99) / 1000.0


def time_calls(fn, pts: list[tuple[float, float]], warmup: int = 200) -> tuple[np.ndarray, list]:
    """Per-call wall time (ns) and answers of ``fn(lon, lat)`` over the points, after a warm-up."""
    for x, y in pts[:warmup]:
        fn(x, y)
    clock = time.perf_counter_ns
    out = np.empty(len(pts), dtype=np.int64)
    answers = []
    for k, (x, y) in enumerate(pts):
        t0 = clock()
        r = fn(x, y)
        out[k] = clock() - t0
        answers.append(r)
    return out, answers


def make_batch(features, bounds, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points: exact vertices and border points (about 1.5 %), the rest uniform around the city."""
    labelled = sample_points(features, max(100, n // 20), seed=seed, with_kind=True)
    border = [(x, y) for kind, x, y in labelled if kind in ("vertex", "shared_edge", "outer_edge")]
    border = border[: n // 2]
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    pad_x, pad_y = 0.01 * (maxx - minx), 0.01 * (maxy - miny)
    m = n - len(border)
    xs = np.concatenate([rng.uniform(minx - pad_x, maxx + pad_x, m), [p[0] for p in border]])
    ys = np.concatenate([rng.uniform(miny - pad_y, maxy + pad_y, m), [p[1] for p in border]])
    is_border = np.concatenate([np.zeros(m, dtype=bool), np.ones(len(border), dtype=bool)])
    order = rng.permutation(n)
    return xs[order], ys[order], is_border[order]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="batch size (default 1,000,000)")
    ap.add_argument("--single", type=int, default=2000, help="points for the single-lookup timings")
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/jauap_bench")
    ap.add_argument("--file", default=str(ROOT / "sectors_geojson" / "turkestan.geojson"))
    ap.add_argument("--seed", type=int, default=20250109)
    ap.add_argument("--subdivide", type=int, default=8, help="ST_Subdivide max_vertices (>= 5)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    fig: dict = {"points": args.points, "single_points": args.single, "file": Path(args.file).name}

    # --- sectors -----------------------------------------------------------------------------
    report = read_sector_file(args.file)
    if not report.ok:
        print("\n".join(report.summary()))
        return 2
    t0 = time.perf_counter()
    index = SectorIndex(report.sectors)
    fig["index_build_ms"] = (time.perf_counter() - t0) * 1000
    log(f"{len(index)} sectors, index built in {fig['index_build_ms']:.0f} ms")

    log(f"connecting to {args.dsn}")
    conn = _pg.connect(args.dsn)
    fig["postgis_version"] = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    fig["postgres_version"] = conn.execute("SHOW server_version").fetchone()[0]
    features = json.loads(Path(args.file).read_text(encoding="utf-8"))["features"]
    _pg.load_sectors(conn, "bench_sector", features)
    conn.execute("DROP TABLE IF EXISTS bench_sector_sub")
    conn.execute(
        "CREATE TABLE bench_sector_sub AS SELECT code, ST_Subdivide(geom, %s) AS geom FROM bench_sector",
        (args.subdivide,),
    )
    conn.execute("CREATE INDEX ON bench_sector_sub USING gist (geom)")
    conn.execute("ANALYZE bench_sector_sub")
    fig["subdivided_pieces"] = conn.execute("SELECT count(*) FROM bench_sector_sub").fetchone()[0]

    # --- single points -------------------------------------------------------------------------
    rng = np.random.default_rng(args.seed)
    minx, miny, maxx, maxy = index.bounds
    single = list(
        zip(
            rng.uniform(minx, maxx, args.single).tolist(),
            rng.uniform(miny, maxy, args.single).tolist(),
            strict=True,
        )
    )
    log(f"single lookups over {args.single} random points in the city's bounds")

    def by_index(x, y):
        m = index.lookup(x, y)
        return m.code if m is not None and m.method == "covers" else None

    # Fresh copies: nothing prepared, no tree; what a naive implementation would do.
    plain = [(s.code, shapely.from_wkb(shapely.to_wkb(s.geometry))) for s in report.sectors]

    def by_unprepared(x, y):
        pt = Point(x, y)
        for code, poly in plain:  # file order is code order here; first hit = smallest code
            if poly.covers(pt):
                return code
        return None

    cur = conn.cursor()

    def by_postgis(x, y):
        cur.execute(SINGLE_SQL, (x, y), prepare=True)
        row = cur.fetchone()
        return row[0] if row else None

    ns_idx, a_idx = time_calls(by_index, single)
    ns_plain, a_plain = time_calls(by_unprepared, single)
    ns_pg, a_pg = time_calls(by_postgis, single)
    fig["single_index_p50_us"], fig["single_index_p99_us"] = percentiles(ns_idx)
    fig["single_unprepared_p50_us"], fig["single_unprepared_p99_us"] = percentiles(ns_plain)
    fig["single_postgis_p50_us"], fig["single_postgis_p99_us"] = percentiles(ns_pg)
    fig["single_agree_postgis"] = sum(a == b for a, b in zip(a_idx, a_pg, strict=True)) / len(single)
    fig["single_agree_unprepared"] = sum(a == b for a, b in zip(a_idx, a_plain, strict=True)) / len(single)

    # --- batch ---------------------------------------------------------------------------------
    log(f"building a batch of {args.points:,} points")
    xs, ys, is_border = make_batch(report.sectors, index.bounds, args.points, args.seed)
    fig["batch_border_points"] = int(is_border.sum())
    runs = []
    for k in range(3):
        t0 = time.perf_counter()
        many = index.lookup_many(xs, ys)
        runs.append(time.perf_counter() - t0)
        log(f"lookup_many run {k + 1}: {runs[-1] * 1000:.0f} ms")
    fig["batch_lookup_many_ms"] = statistics.median(runs) * 1000
    fig["batch_lookup_many_best_ms"] = min(runs) * 1000

    log("COPY the points into PostgreSQL")
    t0 = time.perf_counter()
    _pg.copy_points(conn, "bench_pts", xs, ys)
    fig["pg_load_points_s"] = time.perf_counter() - t0

    joins: list[dict] = []

    def run_variant(name, setting, template, sectors):
        query = template.format(sectors=sectors)
        table = f"bench_res_{len(joins)}"
        conn.execute(setting)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        log(f"join: {name}")
        t0 = time.perf_counter()
        conn.execute(f"CREATE UNLOGGED TABLE {table} AS {query}")
        elapsed = time.perf_counter() - t0
        check = conn.execute(
            f"SELECT count(code), bit_xor(hashtext(id::text || ':' || code)) FROM {table}"
            " WHERE code IS NOT NULL"
        ).fetchone()
        joins.append({"name": name, "seconds": elapsed, "table": table, "check": list(check), "query": query})
        log(f"  {elapsed:.2f} s, {check[0]:,} points covered")

    for v in VARIANTS_BEFORE_POINT_INDEX:
        run_variant(*v)
    log("GiST index on the points")
    t0 = time.perf_counter()
    conn.execute("CREATE INDEX ON bench_pts USING gist (geom)")
    conn.execute("ANALYZE bench_pts")
    fig["pg_index_points_s"] = time.perf_counter() - t0
    for v in VARIANTS_AFTER_POINT_INDEX:
        run_variant(*v)
    conn.execute(DEFAULTS)

    best = min(joins, key=lambda j: j["seconds"])
    fig["joins"] = [{"name": j["name"], "seconds": round(j["seconds"], 3)} for j in joins]
    fig["best_join"] = best["name"]
    fig["best_join_s"] = best["seconds"]
    fig["joins_same_result"] = all(j["check"] == joins[0]["check"] for j in joins)

    log("fetching the best join's answers")
    pg_codes = _pg.fetch_codes(conn, f"SELECT id, code FROM {best['table']}", args.points)
    for j in joins:
        conn.execute(f"DROP TABLE IF EXISTS {j['table']}")
    conn.execute("DROP TABLE IF EXISTS bench_pts")

    covers = many.methods == "covers"
    idx_codes = np.where(covers, many.codes, None)
    same = idx_codes == pg_codes
    outside = np.array([c is None for c in pg_codes])
    fig["agree_rate"] = float(same.mean())
    fig["disagreements"] = int((~same).sum())
    fig["border_agree_rate"] = float(same[is_border].mean()) if is_border.any() else None
    fig["outside_points"] = int(outside.sum())
    fig["outside_nearest"] = int((outside & (many.methods == "nearest")).sum())
    fig["outside_none"] = int((outside & (many.methods == "")).sum())

    # --- figures -----------------------------------------------------------------------------
    r_single = fig["single_postgis_p50_us"] / fig["single_index_p50_us"]
    r_plain = fig["single_unprepared_p50_us"] / fig["single_index_p50_us"]
    r_batch = fig["best_join_s"] * 1000 / fig["batch_lookup_many_ms"]
    fig["ratio_single_postgis_over_index"] = r_single
    fig["ratio_single_unprepared_over_index"] = r_plain
    fig["ratio_batch_join_over_lookup_many"] = r_batch
    fig["total_runtime_s"] = time.perf_counter() - t_start

    out = [
        f"PostgreSQL {fig['postgres_version']}, PostGIS {fig['postgis_version']}; "
        f"{len(index)} sectors; index built in {fig['index_build_ms']:.0f} ms",
        "",
        f"single-point lookup, {args.single} random points (p50 / p99, µs):",
        "  SectorIndex.lookup            {:9.2f} / {:9.2f}".format(
            fig["single_index_p50_us"], fig["single_index_p99_us"]
        ),
        "  unprepared shapely loop       {:9.2f} / {:9.2f}".format(
            fig["single_unprepared_p50_us"], fig["single_unprepared_p99_us"]
        ),
        "  PostGIS query per point       {:9.2f} / {:9.2f}".format(
            fig["single_postgis_p50_us"], fig["single_postgis_p99_us"]
        ),
        f"  answers equal: PostGIS {fig['single_agree_postgis']:.2%}, "
        f"unprepared {fig['single_agree_unprepared']:.2%}",
        "",
        f"batch of {args.points:,} points ({fig['batch_border_points']:,} exact vertices / border points):",
        f"  SectorIndex.lookup_many       {fig['batch_lookup_many_ms']:9.1f} ms (median of 3; best "
        f"{fig['batch_lookup_many_best_ms']:.1f} ms)",
        f"  PostgreSQL load (COPY + geometry)  {fig['pg_load_points_s']:6.2f} s; "
        f"GiST on points {fig['pg_index_points_s']:.2f} s (not in the join times)",
    ]
    for j in joins:
        mark = "  <- best" if j is best else ""
        out.append(f"  {j['name']:<46} {j['seconds']:7.2f} s{mark}")
    out += [
        f"  all join variants give the same answer: {fig['joins_same_result']}",
        "",
        f"agreement SectorIndex (covers) vs PostGIS on the batch: {fig['agree_rate']:.4%} "
        f"({fig['disagreements']} disagreements; border points {fig['border_agree_rate']:.4%})",
        f"  outside every sector: {fig['outside_points']:,} points "
        f"({fig['outside_nearest']:,} given to the nearest sector within {index.tolerance_m:g} m, "
        f"{fig['outside_none']:,} unrouted)",
        "",
        f"ratio PostGIS per-point p50 / SectorIndex p50     {r_single:8.1f}x  (goal >= {GOAL_SINGLE:g}x)",
        f"ratio unprepared loop p50 / SectorIndex p50        {r_plain:8.1f}x",
        f"ratio best in-DB join / lookup_many                {r_batch:8.1f}x  (goal >= {GOAL_BATCH:g}x)",
        "",
        f"{verdict(r_single >= GOAL_SINGLE)} single lookup >= {GOAL_SINGLE:g}x faster than PostGIS",
        f"{verdict(r_batch >= GOAL_BATCH)} batch >= {GOAL_BATCH:g}x faster than the best in-DB join",
        f"{verdict(fig['disagreements'] == 0)} 100% agreement with PostGIS (covers rule)",
        f"total runtime {fig['total_runtime_s']:.0f} s",
    ]
    print("\n".join(out))
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fig.items()}
    print(json.dumps(rounded, ensure_ascii=False))
    ok = r_single >= GOAL_SINGLE and r_batch >= GOAL_BATCH and fig["disagreements"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
