"""The periodic pass: escalations are committed and published, one worker at a time on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.models import AppealEvent
from server.models.types import utcnow
from server.services import dispatch
from server.worker import run_forever, tick
from tests.conftest import APPEAL, bearer, make_staff


def test_tick_escalates_and_commits(committed_app):
    with committed_app.app_context():
        op = bearer(make_staff("operator"))
    client = committed_app.test_client()
    unit = client.get("/api/v1/sectors/lookup?lat=43.2975&lon=68.251").json["sector"]["code"].replace("S", "U")
    with committed_app.app_context():
        worker = make_staff("field_staff", unit=unit)
        dispatch.set_duty(worker, True, utcnow())
        db.session.commit()
    assert client.post("/api/v1/appeals", json=APPEAL, headers=op).json["status"] == "assigned"
    later = utcnow() + timedelta(minutes=committed_app.config["JAUAP_ACCEPT_TIMEOUT_MIN"] + 5)
    with committed_app.app_context():
        assert tick(later) == {"escalated": 1, "positions_purged": 0}
        db.session.remove()
        assert tick(later)["escalated"] == 0
        count = db.session.scalar(select(func.count()).where(AppealEvent.kind == "appeal.escalated"))
        assert count == 1


def test_second_worker_skips_while_the_first_holds_the_lock(committed_app, backend):
    if backend.name != "postgis":
        pytest.skip("SQLite runs one process; the advisory lock is PostgreSQL's")
    from sqlalchemy import create_engine, text

    from server.worker import TICK_LOCK

    engine = create_engine(committed_app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as other:
        trans = other.begin()
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": TICK_LOCK})
        with committed_app.app_context():
            assert tick(utcnow()) == {"skipped": True}
        trans.rollback()
    engine.dispose()
    with committed_app.app_context():
        assert "escalated" in tick(utcnow())


def test_worker_command_runs_one_pass(committed_app):
    res = committed_app.test_cli_runner().invoke(args=["worker", "--once", "--interval", "0"])
    assert res.exit_code == 0, res.output
    run_forever(committed_app, 0, iterations=2)
