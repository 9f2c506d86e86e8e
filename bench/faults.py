"""Fault runs with full figures: kill -9 under load on both backends, and the database stopped mid-load.

Usage::

    python bench/faults.py [--kills 20] [--submissions 200] [--backends spatialite,postgis]
                           [--outage 15] [--dbstop-submissions 200] [--skip-kill] [--skip-dbstop]

What it does (the scenarios are those of ``tests/test_faults.py``, run bigger):

1. **Server killed**, per backend: a fresh migrated database with 8 operators and one field worker per
   unit (each with 2 accepted appeals); the server started as in production (PostGIS:
   ``gunicorn -k gevent -w 1 'server:create_app()'``; SpatiaLite: the embedded ``flask serve``, whose
   WAL / ``synchronous=FULL`` pragmas are read on a live connection). 12 client threads submit
   ``--submissions`` items, half appeals (``Idempotency-Key``) and half photos (client UUIDs), each
   retried on the same key until answered 2xx, while a supervisor ``kill -9``s the server's process
   group ``--kills`` times (the k-th kill once k/(kills+1) of the items are acknowledged) and restarts
   it. Then: every acknowledged appeal and photo stored exactly once, every attachment's files present
   and matching (also as served), no half-written file under a final name; on SQLite
   ``PRAGMA integrity_check``.
2. **Database stopped** (PostGIS): the server reaches PostgreSQL through ``tests/tcp_proxy.py``; under
   load (submissions plus reads and a citizen page) the proxy drops every connection and refuses new
   ones for ``--outage`` seconds. Figures: what the clients got meanwhile (503 with Retry-After
   expected, no 500), the slowest answer, and the recovery time after the database returns (goal < 30 s).

Progress goes to stderr; the last stdout line is a JSON summary. Exit status 0 when every check
passes. The test databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[faults-bench] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="kill -9 per backend (default 20)")
    p.add_argument("--submissions", type=int, default=200, help="appeals + photos per kill run (default 200)")
    p.add_argument("--backends", default="spatialite,postgis", help="kill runs on these (default both)")
    p.add_argument("--outage", type=float, default=15.0, help="seconds the database stays away (default 15)")
    p.add_argument("--dbstop-submissions", type=int, default=200, help="appeals + photos in the DB-stop run")
    p.add_argument("--skip-kill", action="store_true", help="only the database-stop run")
    p.add_argument("--skip-dbstop", action="store_true", help="only the kill runs")
    return p.parse_args(argv)


def _short(figures: dict) -> dict:
    """The figures without the long lists (they are printed separately when not empty)."""
    return {k: v for k, v in figures.items() if k not in ("problems", "refused", "not_503_with_retry_after")}


def main(argv=None) -> int:
    """Run the scenarios, print the figures and a JSON summary; 0 when every check passes."""
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.conftest import Backend, pg_available
    from tests.test_faults import assert_db_stop_figures, assert_kill_figures, db_stop_scenario, kill_scenario

    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    if ("postgis" in wanted or not args.skip_dbstop) and (reason := pg_available()):
        log(f"PostGIS not usable: {reason}")
        return 2
    summary: dict = {"bench": "faults", "kill": {}, "dbstop": None}
    ok = True
    backends: dict[str, Backend] = {}
    with tempfile.TemporaryDirectory(prefix="jauap-faults-bench-") as tmp:
        try:
            def backend(name: str) -> Backend:
                if name not in backends:
                    log(f"building the {name} template database")
                    folder = Path(tmp) / name
                    folder.mkdir()
                    backends[name] = Backend(name, folder)
                    backends[name].build_template()
                return backends[name]

            if not args.skip_kill:
                for name in wanted:
                    log(f"kill run on {name}: {args.kills} kills during {args.submissions} submissions")
                    work = Path(tmp) / f"kill-{name}"
                    work.mkdir()
                    try:
                        figures = kill_scenario(backend(name), work, kills=args.kills, submissions=args.submissions,
                                                say=log)
                    except Exception as exc:  # a crash is a result too: record it, run the rest
                        figures = {"backend": name, "error": repr(exc)[:2000], "problems": [], "refused": []}
                    try:
                        assert "error" not in figures, figures.get("error")
                        assert_kill_figures(figures, args.kills)
                        figures["pass"] = True
                    except AssertionError as exc:
                        figures["pass"], ok = False, False
                        log(f"FAIL: {exc}")
                    log(f"{name}: {json.dumps(_short(figures))}")
                    for problem in figures["problems"][:20] + figures["refused"][:20]:
                        log(f"  problem: {problem}")
                    summary["kill"][name] = figures
            if not args.skip_dbstop:
                log(f"database-stop run on postgis: {args.outage:g} s outage, {args.dbstop_submissions} submissions")
                work = Path(tmp) / "dbstop"
                work.mkdir()
                try:
                    figures = db_stop_scenario(backend("postgis"), work, outage_s=args.outage,
                                               submissions=args.dbstop_submissions, say=log)
                except Exception as exc:  # a crash is a result too
                    figures = {"backend": "postgis", "error": repr(exc)[:2000], "problems": [],
                               "not_503_with_retry_after": []}
                try:
                    assert "error" not in figures, figures.get("error")
                    assert_db_stop_figures(figures)
                    figures["pass"] = True
                except AssertionError as exc:
                    figures["pass"], ok = False, False
                    log(f"FAIL: {exc}")
                log(f"dbstop: {json.dumps(_short(figures))}")
                for problem in figures["problems"][:20] + figures["not_503_with_retry_after"]:
                    log(f"  problem: {problem}")
                summary["dbstop"] = figures
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            for b in backends.values():
                b.cleanup()
    summary["pass"] = ok
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
