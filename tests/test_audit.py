"""The audit log: chained entries, tamper detection, append-only on PostgreSQL, and what gets audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from server.extensions import db
from server.models import Appeal, AuditEntry
from server.services import audit
from tests.conftest import PASSWORD, appeal_body, make_staff

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def entries(action: str | None = None, **where) -> list[AuditEntry]:
    """Audit entries (of ``action``), oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    for key, value in where.items():
        query = query.where(getattr(AuditEntry, key) == value)
    return list(db.session.scalars(query))


def chain_of(n: int) -> list[int]:
    """Append ``n`` entries; their ids."""
    return [audit.record("test.act", None, T0 + timedelta(seconds=i), object_type="thing", object_id=i,
                         data={"n": i, "note": "ы"}).id for i in range(n)]


def is_pg() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def unguarded():
    """Lift the append-only triggers for this test's transaction (rolled back with it), as an attacker would."""
    if is_pg():
        db.session.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    else:
        db.session.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.session.execute(text("DROP TRIGGER audit_entry_no_delete"))


def test_entries_chain_and_verify(db_session):
    ids = chain_of(5)
    assert ids == list(range(ids[0], ids[0] + 5))  # consecutive
    rows = entries("test.act")
    for before, after in pairwise(rows):
        assert after.prev_hash == before.hash and after.hash == audit.entry_hash(after)
    verdict = audit.verify()
    assert verdict.ok and verdict.checked >= 5


def test_an_edited_entry_is_named(db_session):
    ids = chain_of(5)
    unguarded()
    db.session.execute(text("UPDATE audit_entry SET data = :d WHERE id = :i"), {"d": '{"n": 99}', "i": ids[2]})
    db.session.expire_all()
    verdict = audit.verify()
    assert (verdict.ok, verdict.entry_id, verdict.problem) == (False, ids[2], "hash_mismatch")


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(db_session):
    ids = chain_of(5)
    unguarded()
    row = db.session.get(AuditEntry, ids[1])
    forged = {"id": row.id, "at": row.at, "actor_kind": "staff", "actor_id": 1, "actor_name": "x",
              "action": row.action, "object_type": row.object_type, "object_id": row.object_id,
              "data": row.data, "prev_hash": row.prev_hash}
    new_hash = audit.entry_hash(type("E", (), forged))
    db.session.execute(text("UPDATE audit_entry SET actor_kind='staff', actor_id=1, actor_name='x', hash=:h "
                            "WHERE id=:i"), {"h": new_hash, "i": ids[1]})
    db.session.expire_all()
    verdict = audit.verify()
    assert (verdict.entry_id, verdict.problem) == (ids[2], "chain_broken")


def test_a_deleted_entry_is_named(db_session):
    ids = chain_of(5)
    unguarded()
    db.session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": ids[3]})
    verdict = audit.verify()
    assert (verdict.ok, verdict.entry_id, verdict.problem) == (False, ids[3], "missing")


def test_swapped_entries_are_named(db_session):
    ids = chain_of(5)
    unguarded()
    # Swap the places of two entries: each keeps its own hash, the order is what changes.
    db.session.execute(text("UPDATE audit_entry SET id = -1 WHERE id = :a"), {"a": ids[1]})
    db.session.execute(text("UPDATE audit_entry SET id = :a WHERE id = :b"), {"a": ids[1], "b": ids[2]})
    db.session.execute(text("UPDATE audit_entry SET id = :b WHERE id = -1"), {"b": ids[2]})
    db.session.expire_all()
    verdict = audit.verify()
    assert (verdict.ok, verdict.entry_id) == (False, ids[1])
    assert verdict.problem in ("chain_broken", "hash_mismatch")


def test_an_inserted_entry_is_named(db_session):
    ids = chain_of(3)
    unguarded()
    # Make room after the first entry and slip one in, with a hash that is right for its own content.
    for i in reversed(ids[1:]):
        db.session.execute(text("UPDATE audit_entry SET id = id + 1 WHERE id = :i"), {"i": i})
    first = db.session.get(AuditEntry, ids[0])
    fake = AuditEntry(id=ids[1], at=T0, actor_kind="system", action="test.act", data={}, prev_hash=first.hash)
    fake.hash = audit.entry_hash(fake)
    db.session.execute(AuditEntry.__table__.insert().values(
        id=fake.id, at=fake.at, actor_kind="system", action="test.act", data={}, prev_hash=fake.prev_hash,
        hash=fake.hash))
    db.session.expire_all()
    verdict = audit.verify()
    assert verdict.ok is False and verdict.entry_id == ids[2]  # the entry after the insertion no longer links


def test_the_orm_refuses_updates_and_deletes(db_session):
    from server.models import AppendOnlyError

    row = db.session.get(AuditEntry, chain_of(1)[0])
    row.action = "forged"
    with pytest.raises(AppendOnlyError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("sql", ["UPDATE audit_entry SET action = 'x' WHERE id = :i",
                                 "DELETE FROM audit_entry WHERE id = :i"])
def test_the_database_refuses_updates_and_deletes(db_session, sql):
    entry_id = chain_of(1)[0]
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(text(sql), {"i": entry_id})


def test_postgres_refuses_truncate_and_a_role_without_rights(db_session):
    if not is_pg():
        pytest.skip("PostgreSQL triggers and grants")
    chain_of(1)
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(text("TRUNCATE audit_entry"))
    # The production set-up: the app's role may read and append, nothing else (see the report's README text).
    role = f"jauap_app_{uuid.uuid4().hex[:6]}"
    with db.session.begin_nested():
        db.session.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        db.session.execute(text(f"GRANT SELECT, INSERT ON audit_entry TO {role}"))
        db.session.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))  # even without the triggers
        db.session.execute(text(f"SET LOCAL ROLE {role}"))
        for sql in ("UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry"):
            with pytest.raises(DBAPIError, match="permission denied"), db.session.begin_nested():
                db.session.execute(text(sql))
        db.session.execute(text("RESET ROLE"))


def test_logins_are_audited_success_and_failure(client):
    staff = make_staff("operator")
    ok = client.post("/api/v1/auth/token", json={"username": staff.username, "password": PASSWORD})
    assert ok.status_code == 200
    bad = client.post("/api/v1/auth/token", json={"username": staff.username, "password": "wrong-password"})
    nobody = client.post("/api/v1/auth/token", json={"username": "nobody-here", "password": "wrong-password"})
    assert bad.status_code == nobody.status_code == 401
    wins = entries("login.success", object_id=str(staff.id))
    fails = entries("login.failure")
    assert [e.data["via"] for e in wins] == ["token"] and wins[0].actor_name == staff.username
    assert {(e.actor_name, e.data["why"]) for e in fails} >= {(staff.username, "bad_password"),
                                                               ("nobody-here", "unknown_user")}
    session = client.post("/api/v1/auth/session", json={"username": staff.username, "password": "nope-nope"})
    assert session.status_code == 401 and entries("login.failure")[-1].data["via"] == "session"
    assert audit.verify().ok


def test_contact_views_are_audited_per_appeal_and_viewer(client, as_role):
    operator, headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=appeal_body(), headers=headers)
    assert created.status_code == 201 and created.json["citizen"]["phone"]
    appeal_id = created.json["id"]
    inspector, ih = as_role("inspector")
    got = client.get(f"/api/v1/appeals/{appeal_id}", headers=ih)
    assert got.json["citizen"]["phone"]
    views = entries("contact.view", object_id=str(appeal_id))
    assert [(e.actor_id, e.object_type) for e in views] == [(operator.id, "appeal"), (inspector.id, "appeal")]
    # A role that gets no contact leaves no contact entry.
    _analyst, ah = as_role("analyst")
    listed = client.get("/api/v1/appeals", headers=ah)
    if listed.status_code == 200:
        assert all(item.get("citizen") is None for item in listed.json["items"])
    assert len(entries("contact.view", object_id=str(appeal_id))) == 2


def test_status_changes_are_audited_with_their_event(client, as_role):
    _op, headers = as_role("operator")
    appeal_id = client.post("/api/v1/appeals", json=appeal_body(), headers=headers).json["id"]
    changes = entries("appeal.status", object_id=str(appeal_id))
    appeal = db.session.get(Appeal, appeal_id)
    assert [e.data["to"] for e in changes][:2] == ["registered", appeal.status]
    assert all(e.data["event_id"] for e in changes)
    _d, dh = as_role("dispatcher")
    res = client.post(f"/api/v1/appeals/{appeal_id}/transitions",
                      json={"action": "reject", "reason": "Not a city matter"}, headers=dh)
    assert res.status_code == 200
    last = entries("appeal.status", object_id=str(appeal_id))[-1]
    assert last.data["to"] == "rejected" and last.actor_kind == "staff"


def test_permission_changes_are_audited(client, as_role):
    _admin, headers = as_role("admin")
    target = make_staff("field_staff", unit="U1")
    created = entries("staff.create", object_id=str(target.id))
    assert created and created[0].data["role"] == "field_staff"
    res = client.patch(f"/api/v1/staff/{target.id}", json={"active": False}, headers=headers)
    assert res.status_code == 200
    change = entries("staff.update", object_id=str(target.id))
    assert len(change) == 1 and change[0].data["changes"] == {"active": [True, False]}
    assert change[0].actor_id == _admin.id
    # A no-op patch writes no entry.
    client.patch(f"/api/v1/staff/{target.id}", json={"active": False}, headers=headers)
    assert len(entries("staff.update", object_id=str(target.id))) == 1


def test_cli_verify_names_the_broken_entry(app, db_session):
    ids = chain_of(3)
    runner = app.test_cli_runner()
    good = runner.invoke(args=["audit", "verify"])
    assert good.exit_code == 0 and "ok:" in good.output
    unguarded()
    db.session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": ids[1]})
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and f"entry {ids[1]}" in bad.output


def test_concurrent_appends_keep_one_chain(committed_app):
    import threading

    def work(i):
        with committed_app.app_context():
            for j in range(5):
                audit.record("test.race", None, T0, data={"t": i, "j": j})
                db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with committed_app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditEntry.action == "test.race")) == 20
        assert audit.verify().ok
