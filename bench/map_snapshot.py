"""The dispatcher map's snapshot (``GET /api/v1/map/appeals``) over a demo year on PostGIS.

Usage::

    python bench/map_snapshot.py [--appeals 42000] [--open 5000] [--repeat 30] [--reuse]
                                 [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_analytics]

What it does:

1. Reuses (``--reuse``) or (re)creates the analytics bench database with ``--appeals`` appeals of a demo
   year (``bench/analytics.py``'s generator: histories, reopenings, pauses), with progress on stderr. A
   year cut at today leaves a few hundred appeals open; a backlog of ``--open`` is added through the real
   intake (``services.demo.seed_appeals``: recent weeks, some moved along), as after a storm.
2. Times, as a city-wide dispatcher, ``services.mapview.open_appeals`` plus its JSON encoding - what the
   view does - ``--repeat`` times after a warm-up, and the field app's start (``status=assigned``) as
   one field worker.
3. BASELINE, in the same run: the bare floor of that read, the ids of the same visible open appeals
   with a point (``list_query`` reduced to ``Appeal.id``), JSON-encoded. Every figure is also printed as a
   ratio to it, so machines of different speed compare.

Goal: the city-wide snapshot's median <= 10x the baseline's median. Exit 0 when it passes; one JSON line
with every figure at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench import analytics as year  # noqa: E402 (after the path fix above)

GOAL_RATIO = 10.0


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[map-bench] {msg}", file=sys.stderr, flush=True)


def timed(fn, repeat: int) -> dict:
    """Median and p95 (ms) of ``repeat`` calls after one warm-up; the last result's size."""
    fn()
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - started) * 1000)
        if (i + 1) % 10 == 0:
            log(f"  {i + 1}/{repeat}")
    times.sort()
    return {"median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2), "bytes": len(out)}


def main() -> int:
    """Prepare the data, time the snapshot and its floor, print figures and ratios; 1 when the goal fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appeals", type=int, default=42_000)
    parser.add_argument("--open", type=int, default=5000, help="top the open appeals up to about this many")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--dsn", default=year.DEFAULT_DSN)
    parser.add_argument("--reuse", action="store_true", help="keep a bench database that already has the appeals")
    args = parser.parse_args()
    now = datetime.now(UTC)

    from sqlalchemy import func, select, text

    from server.extensions import db
    from server.models import OPEN_STATUSES, Appeal, Staff
    from server.services import mapview
    from server.services.appeals import list_query

    app = year.prepare(args.dsn, args.appeals, args.reuse, now)

    with app.app_context():
        n_open = db.session.scalar(select(func.count(Appeal.id)).where(Appeal.status.in_(OPEN_STATUSES)))
        if n_open < args.open * 0.9:
            import random

            from server.services.demo import seed_appeals

            missing = args.open - n_open
            log(f"{n_open} open: adding {missing} appeals through the intake")
            started, last = time.perf_counter(), [0.0]

            def progress(done: int, total: int) -> None:
                if time.perf_counter() - last[0] > 2 or done == total:
                    last[0] = time.perf_counter()
                    log(f"  {done}/{total} appeals ({done / (last[0] - started):.0f}/s)")

            # Some are moved along and closed by the seeder: ask for a fifth more than missing.
            seed_appeals(int(missing * 1.2), now=now, rng=random.Random(n_open), progress=progress)
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        dispatcher = db.session.scalar(select(Staff).where(Staff.role == "dispatcher").order_by(Staff.id))
        worker = db.session.scalar(select(Staff).join(Appeal, Appeal.assignee_id == Staff.id)
                                   .where(Staff.role == "field_staff", Appeal.status == "assigned")
                                   .group_by(Staff.id).order_by(func.count(Appeal.id).desc(), Staff.id))
        n_open = db.session.scalar(select(func.count(Appeal.id)).where(Appeal.status.in_(OPEN_STATUSES)))
        total = db.session.scalar(select(func.count(Appeal.id)))
        log(f"{total} appeals, {n_open} open; dispatcher {dispatcher.username}, "
            f"field worker {worker.username if worker else '-'}")

        def floor():
            ids = db.session.scalars(list_query(dispatcher, status=",".join(OPEN_STATUSES))
                                     .where(Appeal.location.is_not(None))
                                     .with_only_columns(Appeal.id).order_by(Appeal.id)).all()
            db.session.rollback()
            return json.dumps(ids)

        def snapshot(viewer, **filters):
            def run():
                out = json.dumps(mapview.open_appeals(viewer, now, **filters), default=str)
                db.session.rollback()  # each request has its own transaction
                return out
            return run

        figures = {}
        log("baseline: the ids of the visible open appeals")
        figures["baseline (ids only)"] = timed(floor, args.repeat)
        log("city-wide snapshot (dispatcher)")
        figures["city-wide snapshot"] = timed(snapshot(dispatcher), args.repeat)
        if worker is not None:
            log("field app's start (status=assigned, one worker)")
            figures["field start (assigned)"] = timed(snapshot(worker, status="assigned"), args.repeat)

    base = figures["baseline (ids only)"]["median_ms"]
    print(f"{n_open} open appeals; {args.repeat} runs each after a warm-up")
    print(f"{'read':28s} {'median ms':>10s} {'p95 ms':>9s} {'KB':>8s} {'x baseline':>11s}")
    for name, f in figures.items():
        f["ratio"] = round(f["median_ms"] / base, 2) if base else None
        print(f"{name:28s} {f['median_ms']:10.2f} {f['p95_ms']:9.2f} {f['bytes'] / 1024:8.1f} {f['ratio']:11.2f}")
    ratio = figures["city-wide snapshot"]["ratio"]
    passed = ratio is not None and ratio <= GOAL_RATIO
    print(f"goal: city-wide snapshot median <= {GOAL_RATIO:g}x baseline: {ratio}x {'PASS' if passed else 'FAIL'}")
    print(json.dumps({"open": n_open, "figures": figures, "goal_ratio": GOAL_RATIO, "pass": passed}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
