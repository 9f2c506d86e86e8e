"""Engine set-up per backend: SpatiaLite loading and SQLite durability settings.

PostgreSQL + PostGIS needs nothing beyond the URL. SQLite needs, on every new
connection: the SpatiaLite extension, WAL with ``synchronous=FULL`` (an
acknowledged write survives ``kill -9``), foreign keys, and a busy timeout.
Transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads
and then writes can fail at once with "database is locked" when another writer
is active, because SQLite will not wait on a lock upgrade that could deadlock.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError


def is_sqlite(engine_or_url) -> bool:
    """True when the engine (or URL string) is SQLite/SpatiaLite."""
    url = str(getattr(engine_or_url, "url", engine_or_url))
    return url.startswith("sqlite")


def configure_engine(engine: Engine, spatialite_library: str) -> None:
    """Attach the per-connection hooks the backend needs (idempotent per engine)."""
    if not is_sqlite(engine) or getattr(engine, "_jauap_configured", False):
        return
    engine._jauap_configured = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        dbapi_conn.enable_load_extension(True)
        dbapi_conn.load_extension(spatialite_library)
        dbapi_conn.enable_load_extension(False)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        if cur.execute("SELECT CheckSpatialMetaData()").fetchone()[0] < 1:
            # One transaction, WGS84 SRIDs only: seconds faster than the full EPSG table.
            cur.execute("SELECT InitSpatialMetaData(1, 'WGS84')")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def end_sessions_safely(app, db) -> None:
    """Close each request's session before Flask-SQLAlchemy's own teardown (teardowns run in reverse
    order of registration: call this after ``db.init_app``).

    Closing rolls back the connection's open transaction. If the database went away after the
    answer was made, that rollback fails; the connection is then dropped (invalidated) instead,
    and the answer stands rather than becoming a 500.
    """

    @app.teardown_appcontext
    def _end_session(_exc):
        try:
            db.session.close()
        except DBAPIError:
            db.session().invalidate()
