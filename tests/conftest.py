"""Test fixtures: every app test runs on real SpatiaLite and on real PostGIS.

* ``backend`` is a session fixture parametrised over both databases.
* The schema comes from the Alembic migrations (not ``create_all``), with the
  sector file loaded, in a template database built once per backend.
* Each test runs in one transaction that is rolled back (``db_session``);
  tests that need real commits and several connections (concurrency) use
  ``committed_app``, a throwaway copy of the template.
* Without PostgreSQL the PostGIS half skips with a message, except under
  ``CI=true``, where it fails: CI must prove both backends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from flask import g
from flask.testing import FlaskClient
from flask_migrate import upgrade
from flask_sqlalchemy.session import Session as FsaSession
from sqlalchemy import event

from server import create_app
from server.config import REPO_ROOT, TestConfig
from server.extensions import db
from server.models.types import utcnow

PG_ADMIN_URL = os.environ.get("JAUAP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SECTOR_FILE = REPO_ROOT / "sectors_geojson" / "turkestan.geojson"
os.environ.setdefault("SPATIALITE_LIBRARY_PATH", "mod_spatialite")


def _pg_admin():
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def pg_available() -> str | None:
    """None when PostGIS can be used, else the reason."""
    try:
        with _pg_admin() as conn:
            row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
            if row is None:
                return "the postgis extension is not installed (make test installs postgresql-15-postgis-3)"
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    return None


def _pg_create(name: str, template: str | None = None) -> None:
    with _pg_admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    if template is None:
        with psycopg.connect(_pg_url(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def _pg_drop(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def make_app(database_url: str, instance: Path, **extra):
    """An app on ``database_url`` with test settings."""
    return create_app(TestConfig(database_url, str(instance), **extra))


def migrate_and_load(app) -> None:
    """Run the migrations to head and load the sector file (what an operator does on day one)."""
    from server.services.sectors import load_sector_set

    with app.app_context():
        upgrade(directory=str(REPO_ROOT / "migrations"))
        load_sector_set(SECTOR_FILE, datetime(2026, 1, 5, tzinfo=UTC), loaded_by="tests")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


class Backend:
    """One database flavour: how to make a migrated template and throwaway copies of it."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self._copies: list[str] = []

    @property
    def template_name(self) -> str:
        return f"jauap_test_tpl_{self.tag}"

    def build_template(self) -> None:
        if self.name == "spatialite":
            url = f"sqlite:///{self.tmp / 'template.sqlite'}"
        else:
            _pg_create(self.template_name)
            url = _pg_url(self.template_name)
        migrate_and_load(make_app(url, self.tmp / "instance-template"))

    def copy(self, label: str) -> str:
        """A fresh database equal to the template; returns its URL."""
        if self.name == "spatialite":
            target = self.tmp / f"{label}-{uuid.uuid4().hex[:6]}.sqlite"
            shutil.copy(self.tmp / "template.sqlite", target)
            return f"sqlite:///{target}"
        name = f"jauap_test_{label}_{self.tag}_{uuid.uuid4().hex[:6]}"
        _pg_create(name, template=self.template_name)
        self._copies.append(name)
        return _pg_url(name)

    def cleanup(self) -> None:
        if self.name == "postgis":
            for name in [*self._copies, self.template_name]:
                _pg_drop(name)


@pytest.fixture(scope="session", params=["spatialite", "postgis"])
def backend(request, tmp_path_factory):
    """The database flavour under test (every app test runs on both)."""
    if request.param == "postgis":
        reason = pg_available()
        if reason:
            if IN_CI:
                pytest.fail(f"PostGIS is required in CI: {reason}")
            pytest.skip(f"PostGIS tests skipped: {reason}")
    b = Backend(request.param, tmp_path_factory.mktemp(request.param))
    b.build_template()
    yield b
    b.cleanup()


@pytest.fixture(scope="session")
def app(backend):
    """The app on a session-wide copy of the template (tests roll back their changes)."""
    application = make_app(backend.copy("main"), backend.tmp / "instance")
    yield application
    with application.app_context():
        db.engine.dispose()


class BoundSession(FsaSession):
    """A session that always uses the connection it was given (the test's transaction)."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        return self.bind


@pytest.fixture
def db_session(app):
    """One transaction per test, rolled back at the end; the app's requests share it."""
    ctx = app.app_context()
    ctx.push()
    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    # Flask-SQLAlchemy's get_bind() would ignore ``bind`` and open another connection (BoundSession).
    session = db._make_scoped_session(
        {"bind": connection, "join_transaction_mode": "create_savepoint", "class_": BoundSession}
    )
    db.session = session
    try:
        yield session
    finally:
        session.remove()
        db.session = original
        outer.rollback()
        connection.close()
        ctx.pop()


class FreshUserClient(FlaskClient):
    """Requests share the test's app context (and transaction), so forget per-request ``g`` state
    (the cached login, the CSRF token) before each one, as a real server's fresh context would."""

    def open(self, *args, **kwargs):
        for key in list(g):
            g.pop(key, None)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app, db_session):
    """A test client whose requests run inside the test's transaction."""
    app.test_client_class = FreshUserClient
    return app.test_client()


@pytest.fixture
def committed_app(backend, tmp_path):
    """An app on its own fresh database where commits are real (for concurrency tests)."""
    application = make_app(backend.copy("c"), tmp_path / "instance")
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


# --- factories -----------------------------------------------------------

PASSWORD = "correct-horse-battery"


def make_staff(role: str, unit: str | None = None, username: str | None = None, language: str = "en"):
    """Create a staff member (in the current session) with a known password."""
    from server.services.staff import create_staff

    if role in ("unit_head", "field_staff") and unit is None:
        unit = "U1"
    staff = create_staff(username or f"{role}-{uuid.uuid4().hex[:6]}", role, PASSWORD, unit_code=unit,
                         language=language, now=utcnow())
    # Commit (inside a test transaction: release the savepoint) so an error handler's rollback keeps it.
    db.session.commit()
    return staff


def bearer(staff) -> dict:
    """Authorization headers carrying a fresh token for ``staff``."""
    from server.services.staff import issue_token

    token, _row = issue_token(staff, utcnow(), 12)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_role(db_session):
    """``as_role("operator", unit=None)`` -> (staff, headers)."""

    def factory(role: str, unit: str | None = None, language: str = "en"):
        staff = make_staff(role, unit, language=language)
        return staff, bearer(staff)

    return factory


APPEAL = {
    "type": "complaint",
    "topic": "roads",
    "description": "A deep pothole in front of house 12.",
    "lat": 43.2975,
    "lon": 68.2510,
    "accuracy_m": 12,
    "channel": "phone",
    "citizen": {"name": "Aigerim S.", "phone": "+7 701 555 1234", "language": "kk"},
}


def appeal_body(**overrides) -> dict:
    """A valid appeal request body with ``overrides`` applied."""
    body = {**APPEAL, **overrides}
    return {k: v for k, v in body.items() if v is not ...}


def count_rows(model) -> int:
    """Rows of ``model`` visible in the current session."""
    from sqlalchemy import func, select

    return db.session.scalar(select(func.count()).select_from(model))


def statement_counter(engine):
    """A list that collects SQL statements executed on ``engine`` (for 'nothing written' checks)."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _collect(conn, cursor, statement, *args):
        seen.append(statement)

    return seen
