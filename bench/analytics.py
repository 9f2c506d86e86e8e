"""The analytics dashboard's queries over a demo year of 100,000 appeals on PostGIS.

Usage::

    python bench/analytics.py [--appeals 100000] [--repeat 5] [--reuse]
                              [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_analytics]

What it does:

1. (Re)creates the bench database, migrates it to head, loads the sectors and the demo staff, and
   generates ``--appeals`` appeals with the demo-year generator (``server.services.demo.seed_year``:
   12 months, histories, ratings), printing progress; then ANALYZE. ``--reuse`` keeps a database
   that already holds that many appeals (the generation takes a few minutes).
2. Runs each dashboard query (``server.services.analytics``) unfiltered and with a filter
   (topic + channel), once to warm up and then ``--repeat`` times, and prints each one's median
   and worst time. The whole dashboard call (every figure at once) is timed as well.
3. Goal: every query's median < 1 s. Exit 0 when all pass, 1 otherwise; one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder would be first on sys.path and bench/geo.py would hide the geo package.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

SECTOR_FILE = REPO / "sectors_geojson" / "turkestan.geojson"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/jauap_bench_analytics"
GOAL_S = 1.0


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[analytics-bench] {msg}", file=sys.stderr, flush=True)


def recreate_database(dsn: str) -> None:
    """Drop and create the bench database, with PostGIS."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def make_app(dsn: str):
    """The app on the bench database."""
    from server import create_app
    from server.config import Config

    return create_app(Config(secret_key=SECRET, instance_path=tempfile.mkdtemp(prefix="jauap-bench-"),
                             database_url=dsn))


def generate(app, count: int, now: datetime) -> None:
    """Migrate, load sectors and demo staff, then seed ``count`` appeals of a demo year."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from server.cli import demo_staff
    from server.extensions import db
    from server.services.demo import seed_year
    from server.services.sectors import load_sector_set

    with app.app_context():
        log("migrating to head")
        upgrade(directory=str(REPO / "migrations"))
        load_sector_set(SECTOR_FILE, datetime(2025, 1, 5, tzinfo=UTC), loaded_by="bench")
        demo_staff(now)
        db.session.commit()
        started = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 2 or done == total:
                last[0] = time.perf_counter()
                rate = done / (last[0] - started)
                log(f"generated {done}/{total} appeals ({rate:.0f}/s)")

        seed_year(count, now=now, rng=random.Random(109), progress=progress, batch=5000)
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        log(f"generation took {time.perf_counter() - started:.0f} s")


def prepare(dsn: str, appeals: int, reuse: bool, now: datetime):
    """The app on the bench database: kept when ``reuse`` and it holds ``appeals`` already, else regenerated."""
    from sqlalchemy import func, select

    from server.extensions import db
    from server.models import Appeal

    if reuse:
        try:
            app = make_app(dsn)
            with app.app_context():
                if (db.session.scalar(select(func.count(Appeal.id))) or 0) >= appeals:
                    return app
        except Exception as exc:  # no database yet
            log(f"cannot reuse ({type(exc).__name__}); generating")
    log(f"recreating {dsn.rsplit('/', 1)[-1]}")
    recreate_database(dsn)
    app = make_app(dsn)
    generate(app, appeals, now)
    return app


def queries(now: datetime) -> dict:
    """Name -> callable(filters) for each dashboard query."""
    from server.services import analytics as a

    return {
        "counts by type": lambda f: a.counts(f, "type"),
        "counts by topic": lambda f: a.counts(f, "topic"),
        "counts by sector": lambda f: a.counts(f, "sector"),
        "counts by channel": lambda f: a.counts(f, "channel"),
        "trend by day": lambda f: a.trend(f, "day"),
        "trend by week": lambda f: a.trend(f, "week"),
        "trend by month": lambda f: a.trend(f, "month"),
        "open-now backlog": lambda f: a.backlog(f, now),
        "oldest open (200 rows)": lambda f: list(a.backlog_rows(f, now, "analyst", limit=a.BACKLOG_ROW_LIMIT)),
        "backlog export (all open rows)": lambda f: list(a.backlog_rows(f, now, "analyst")),
        "timeliness (compliance, FCR, extensions, median)": a.timeliness,
        "median hours to resolve": a.median_hours,
        "citizen ratings": a.quality,
        "hotspots (250 m grid x topic)": a.hotspots,
        "whole dashboard (every figure)": lambda f: a.dashboard(f, now, role="analyst"),
    }


def main() -> int:
    """Generate (or reuse) the data, time every query, print the figures; 1 when a goal fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appeals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--reuse", action="store_true", help="keep a bench database that already has the appeals")
    args = parser.parse_args()
    now = datetime.now(UTC)
    from sqlalchemy import func, select

    from server.extensions import db
    from server.models import Appeal, AppealEvent
    from server.services.analytics import Filters

    app = prepare(args.dsn, args.appeals, args.reuse, now)
    results = []
    with app.app_context():
        n_appeals = db.session.scalar(select(func.count(Appeal.id)))
        n_events = db.session.scalar(select(func.count(AppealEvent.id)))
        log(f"{n_appeals} appeals, {n_events} events")
        for label, filters in (("all", Filters()), ("topic=heating,channel=phone",
                                                   Filters.parse(topic="heating", channel="phone"))):
            for name, fn in queries(now).items():
                fn(filters)  # warm-up (plans, caches)
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    fn(filters)
                    times.append(time.perf_counter() - t0)
                db.session.rollback()
                med, worst = statistics.median(times), max(times)
                ok = med < GOAL_S
                results.append({"query": name, "filter": label, "median_s": round(med, 4),
                                "max_s": round(worst, 4), "ok": ok})
                print(f"{'ok ' if ok else 'FAIL'} {med * 1000:8.1f} ms (max {worst * 1000:8.1f})  "
                      f"[{label}] {name}", flush=True)
    failed = [r for r in results if not r["ok"]]
    print(f"\n{len(results) - len(failed)}/{len(results)} queries under {GOAL_S:g} s (median of {args.repeat}) "
          f"over {n_appeals} appeals")
    print(json.dumps({"appeals": n_appeals, "events": n_events, "goal_s": GOAL_S, "results": results}))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
