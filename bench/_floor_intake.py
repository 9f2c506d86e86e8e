"""The intake FLOOR: the least a durable appeal registration must do, served like Jauap.

``bench/intake.py --floor`` serves this app with the very gunicorn command, worker class, worker
and thread counts as Jauap, on the same PostGIS database, with Flask-SQLAlchemy and the engine
options Jauap's ``Config.to_flask()`` gives PostgreSQL, and drives it with the same load generator:

* ``GET /healthz`` - the same answer as Jauap's probe (``{"status": "ok"}``), no hooks;
* ``POST /api/v1/appeals`` - parse the JSON body, ONE ``INSERT`` of a row carrying a PostGIS point
  (``RETURNING id``), ``COMMIT`` (durable: ``synchronous_commit`` as configured, on by default),
  answer ``{"id": ...}`` with 201. No authentication, validation, routing, numbering or events.

No implementation of Jauap's endpoint can do less per request and still keep the appeal, so the
floor's ``POST / healthz`` ratio bounds what Jauap's ratio can reach on this machine.
"""

from __future__ import annotations

import os

from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS floor_appeal (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL,"
    " description text NOT NULL, location geometry(Point, 4326))"
)
INSERT = text(
    "INSERT INTO floor_appeal (created_at, description, location)"
    " VALUES (now(), :description, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"
)


def engine_options(dsn: str) -> dict:
    """Jauap's engine options for this database URL (pool size, pre-ping)."""
    from server.config import Config  # settings only: no request-path code of Jauap is used

    return Config(secret_key="floor", database_url=dsn).to_flask()["SQLALCHEMY_ENGINE_OPTIONS"]


def create_app() -> Flask:
    """The floor app, configured from ``DATABASE_URL`` like Jauap's server."""
    dsn = os.environ["DATABASE_URL"]
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=dsn, SQLALCHEMY_ENGINE_OPTIONS=engine_options(dsn),
                      SQLALCHEMY_TRACK_MODIFICATIONS=False)
    db = SQLAlchemy(app)

    @app.get("/healthz")
    def healthz():
        """Liveness, as Jauap's."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        """Readiness: the database answers (the bench waits on it)."""
        db.session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.post("/api/v1/appeals")
    def create_appeal():
        """One durable INSERT of a located row, then commit."""
        body = request.get_json()
        new_id = db.session.execute(
            INSERT, {"description": body["description"], "lon": body["lon"], "lat": body["lat"]}
        ).scalar_one()
        db.session.commit()
        return {"id": new_id}, 201

    return app


def create_table(dsn: str) -> None:
    """(Re)create the floor's table, empty (called by the bench before serving)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("DROP TABLE IF EXISTS floor_appeal")
        conn.execute(TABLE_DDL)
