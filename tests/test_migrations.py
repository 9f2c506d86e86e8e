"""Migrations: one head, upgrade/downgrade on empty PostGIS and SpatiaLite, no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from server.config import REPO_ROOT
from server.extensions import db
from tests.conftest import _pg_create, _pg_url, make_app

MIGRATIONS = str(REPO_ROOT / "migrations")


def test_single_head():
    cfg = AlembicConfig(str(REPO_ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", MIGRATIONS)
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, heads


def _empty_app(backend, tmp_path):
    if backend.name == "spatialite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    else:
        name = f"jauap_test_empty_{backend.tag}"
        _pg_create(name)
        backend._copies.append(name)
        url = _pg_url(name)
    return make_app(url, tmp_path / "inst")


def test_upgrade_downgrade_upgrade_on_an_empty_database(backend, tmp_path):
    app = _empty_app(backend, tmp_path)
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        tables = set(inspect(db.engine).get_table_names())
        assert {"appeal", "appeal_event", "sector", "staff", "citizen", "topic", "unit"} <= tables
        from server.models import Topic
        assert db.session.query(Topic).count() == 14
        db.session.remove()
        downgrade(directory=MIGRATIONS, revision="base")
        assert "appeal" not in set(inspect(db.engine).get_table_names())
        upgrade(directory=MIGRATIONS)
        assert "appeal_event" in set(inspect(db.engine).get_table_names())
        db.session.remove()
        db.engine.dispose()


def test_models_and_migrations_do_not_drift(app):
    import importlib.util

    spec = importlib.util.spec_from_file_location("jauap_env_helpers", REPO_ROOT / "migrations" / "env.py")
    assert spec is not None
    with app.app_context():
        from geoalchemy2 import alembic_helpers

        metadata = db.metadata

        def include_object(obj, name, obj_type, reflected, compare_to):
            if not alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to):
                return False
            if obj_type == "table" and reflected and compare_to is None:
                return name in metadata.tables
            return True

        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True,
                                                         "target_metadata": metadata})
            diff = compare_metadata(ctx, metadata)
        assert diff == [], diff


def test_migrations_are_not_cut_by_the_apps_statement_timeout(backend, tmp_path):
    """An index over years of appeals may outlast JAUAP_DB_STATEMENT_TIMEOUT_MS: env.py runs the
    migrations without it (here 1 ms, shorter than SQLAlchemy's own first-connect queries, which the
    old SET-after-connect design let cut) while the app's connections keep it."""
    from dataclasses import replace

    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from server import create_app
    from server.config import TestConfig

    if backend.name != "postgis":
        pytest.skip("a PostgreSQL setting; SQLite has no statement limit")
    name = f"jauap_test_limit_{backend.tag}"
    _pg_create(name)
    backend._copies.append(name)
    app = create_app(replace(TestConfig(_pg_url(name), str(tmp_path / "inst")), db_statement_timeout_ms=1))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        # the app's own engine still carries the limit: a 50 ms statement is cut
        with pytest.raises(DBAPIError, match="statement timeout"), db.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(0.05)"))
        db.session.remove()
        db.engine.dispose()
    plain = create_engine(_pg_url(name))
    try:
        assert "appeal_event" in set(inspect(plain).get_table_names())
        with plain.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        plain.dispose()
