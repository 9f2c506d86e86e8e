"""The audit log: chained entries, tamper detection, append-only on PostgreSQL, and what gets audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, AuditEntry, AuditPending
from server.services import audit
from tests.conftest import PASSWORD, appeal_body, make_staff

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def entries(action: str | None = None, *, seal: bool = True, **where) -> list[AuditEntry]:
    """Chained audit entries (of ``action``), oldest first; by default after sealing what is pending."""
    if seal:
        audit.seal_all()
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    for key, value in where.items():
        query = query.where(getattr(AuditEntry, key) == value)
    return list(db.session.scalars(query))


def pending(action: str) -> list[AuditPending]:
    """Committed (or, in this session, flushed) entries of ``action`` not yet chained."""
    return list(db.session.scalars(select(AuditPending).where(AuditPending.action == action)
                                   .order_by(AuditPending.id)))


def chain_of(n: int) -> list[int]:
    """Record ``n`` entries, commit (inside a test: release the savepoint) and seal them; their ids."""
    for i in range(n):
        audit.record("test.act", None, T0 + timedelta(seconds=i), object_type="thing", object_id=i,
                     data={"n": i, "note": "ы"})
    db.session.commit()
    return [e.id for e in entries("test.act")][-n:]


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


def test_cli_seal_and_verify_report_pending_and_name_the_broken_entry(app, db_session):
    ids = chain_of(3)
    runner = app.test_cli_runner()
    good = runner.invoke(args=["audit", "verify"])
    assert good.exit_code == 0 and "ok:" in good.output and "pending: 0 " in good.output
    audit.record("test.cli", None, T0)
    db.session.commit()
    waiting = runner.invoke(args=["audit", "verify"])
    assert waiting.exit_code == 0 and f"head {ids[-1]} " in waiting.output and "pending: 1 " in waiting.output
    sealed = runner.invoke(args=["audit", "seal"])
    assert sealed.exit_code == 0 and "sealed: 1 entries" in sealed.output
    after = runner.invoke(args=["audit", "verify"])
    assert f"head {ids[-1] + 1} " in after.output and "pending: 0 " in after.output
    unguarded()
    db.session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": ids[1]})
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and f"entry {ids[1]}" in bad.output


# --- the queue: written by the acting transaction, chained by seal_pending ----------------------


def test_entries_wait_in_the_queue_and_a_rollback_drops_them(db_session):
    audit.record("test.kept", None, T0)
    with pytest.raises(RuntimeError), db.session.begin_nested():
        audit.record("test.savepoint", None, T0)
        raise RuntimeError("the savepoint is rolled back")
    with db.session.begin_nested():
        audit.record("test.released", None, T0)
    db.session.commit()
    audit.record("test.rolled_back", None, T0)
    db.session.rollback()
    # Committed with their transaction as queue rows, not yet in the chain.
    assert [p.action for p in pending("test.kept") + pending("test.released")] == ["test.kept", "test.released"]
    assert pending("test.savepoint") == pending("test.rolled_back") == []
    assert entries("test.kept", seal=False) == []
    assert audit.seal_pending() >= 2
    chained = [e for e in entries(seal=False) if e.action.startswith("test.")]
    assert [e.action for e in chained] == ["test.kept", "test.released"]
    assert chained[1].id == chained[0].id + 1 and chained[1].prev_hash == chained[0].hash
    assert all(e.hash == audit.entry_hash(e) for e in chained)
    assert pending("test.kept") == pending("test.released") == [] and audit.pending_count() == 0
    assert audit.seal_pending() == 0 and audit.verify().ok


@pytest.mark.parametrize("sql", ["DELETE FROM audit_pending WHERE id = :i",
                                 "UPDATE audit_pending SET action = 'x' WHERE id = :i",
                                 "UPDATE audit_pending SET data = '{}' WHERE id = :i"])
def test_an_unchained_entry_cannot_leave_the_queue_or_change(db_session, sql):
    """Migration 0009: the app's role may delete from audit_pending (the sealer needs it), but only
    what the chain already holds; before it, this DELETE went through and the act was never chained."""
    audit.record("test.guarded", None, T0, object_type="thing", object_id=7, data={"why": "ы"})
    db.session.commit()
    row = pending("test.guarded")[0]
    with pytest.raises(DBAPIError, match="audit_pending"), db.session.begin_nested():
        db.session.execute(text(sql), {"i": row.id})
    # The sealer, which inserts into the chain first, still moves it.
    assert [e.data for e in entries("test.guarded")] == [{"why": "ы"}]
    assert pending("test.guarded") == [] and audit.verify().ok


def test_a_chain_entry_with_other_content_does_not_release_a_pending_one(db_session):
    audit.record("test.guarded", None, T0, object_type="thing", object_id=7, data={"n": 1})
    db.session.commit()
    audit.record("test.guarded", None, T0, object_type="thing", object_id=7, data={"n": 2})
    db.session.commit()
    first, other = (p.id for p in pending("test.guarded"))
    assert audit.seal_pending(limit=1) == 1  # chains the first only: same time, actor and object, other data
    with pytest.raises(DBAPIError, match="audit_pending"), db.session.begin_nested():
        db.session.execute(text("DELETE FROM audit_pending WHERE id = :i"), {"i": other})
    assert [p.id for p in pending("test.guarded")] == [other] != [first]


def test_seal_pending_goes_in_id_order_in_batches(db_session):
    audit.seal_all()
    for i in range(7):
        audit.record("test.batch", None, T0, data={"i": i})
    db.session.commit()
    assert [audit.seal_pending(limit=3) for _ in range(4)] == [3, 3, 1, 0]
    rows = entries("test.batch", seal=False)
    assert [e.data["i"] for e in rows] == list(range(7)) and rows[-1].id - rows[0].id == 6
    assert audit.verify().ok


def test_the_production_grants_let_the_app_role_record_and_seal(db_session):
    """The README's SQL for the app's role: it records and seals, and still cannot alter the chain."""
    if not is_pg():
        pytest.skip("PostgreSQL grants")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("**Audit log**"):]
    block = block[block.index("```sql") + len("```sql"):]
    block = block[:block.index("```")]
    role = f"jauap_app_{uuid.uuid4().hex[:6]}"
    statements = [s.strip() for s in block.replace("jauap_app", role).split(";") if s.strip()]
    assert statements[0].startswith(f"CREATE ROLE {role} LOGIN")
    chain_of(1)
    with db.session.begin_nested():
        db.session.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        for sql in statements[1:]:
            db.session.execute(text(sql))
    db.session.execute(text(f"SET LOCAL ROLE {role}"))
    audit.record("test.as_app", None, T0)
    db.session.commit()
    assert audit.seal_pending() >= 1 and entries("test.as_app", seal=False)
    audit.record("test.as_app_unchained", None, T0)
    db.session.flush()
    for sql in ("UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry",
                "UPDATE audit_pending SET action = 'x'",
                "DELETE FROM audit_pending WHERE action = 'test.as_app_unchained'"):
        with pytest.raises(DBAPIError, match=r"permission denied|audit_pending"), db.session.begin_nested():
            db.session.execute(text(sql))
    db.session.execute(text("RESET ROLE"))


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
        assert audit.pending_count() >= 20
        audit.seal_all()
        assert db.session.scalar(select(func.count()).where(AuditEntry.action == "test.race")) == 20
        assert audit.verify().ok and audit.pending_count() == 0


def _pg_only(backend):
    if backend.name != "postgis":
        pytest.skip("SQLite admits one writer at a time (BEGIN IMMEDIATE): no second writer can run meanwhile")


def test_writers_never_wait_for_the_chain_lock_or_each_other(backend, committed_app):
    """A sealer holds the chain lock; A records (and writes a row) and waits; B records and commits meanwhile."""
    import threading
    import time

    from sqlalchemy import create_engine

    from server.services.staff import create_staff

    _pg_only(backend)
    a_recorded, b_done = threading.Event(), threading.Event()
    took: dict[str, float] = {}
    errors: list[BaseException] = []

    def writer_a():
        try:
            with committed_app.app_context():
                create_staff(f"slow-{uuid.uuid4().hex[:6]}", "operator", PASSWORD, now=T0)  # audits staff.create
                audit.record("test.slow", None, T0)
                db.session.flush()
                a_recorded.set()
                b_done.wait(timeout=5)
                t0 = time.monotonic()
                db.session.commit()
                took["a"] = time.monotonic() - t0
                db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            a_recorded.set()

    def writer_b():
        try:
            with committed_app.app_context():
                a_recorded.wait(timeout=5)
                t0 = time.monotonic()
                audit.record("test.quick", None, T0)
                db.session.commit()
                took["b"] = time.monotonic() - t0
                b_done.set()
                db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            b_done.set()

    engine = create_engine(committed_app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as sealer:
            held = sealer.begin()
            sealer.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.CHAIN_LOCK_KEY})
            threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            assert not errors, errors
            assert took["b"] < 3.0, f"B waited {took['b']:.2f} s (for A's transaction or the chain lock)"
            assert took["a"] < 3.0, f"A's commit waited {took['a']:.2f} s for the chain lock"
            with committed_app.app_context():
                # Another sealer is at work: the worker's sealer skips its round, nothing is lost.
                assert audit.seal_pending(wait=False) == 0
                assert {p.action for p in pending("test.quick") + pending("test.slow")} == {"test.quick",
                                                                                           "test.slow"}
                db.session.remove()
            held.rollback()
    finally:
        engine.dispose()
    with committed_app.app_context():
        quick, slow = entries("test.quick"), entries("test.slow")
        assert len(quick) == len(slow) == 1 and len(entries("staff.create", seal=False)) >= 1
        assert audit.verify().ok and audit.pending_count() == 0


def test_many_writers_and_concurrent_sealers_keep_one_verifiable_chain(backend, committed_app):
    """Writers record early, work on, record again, sometimes roll back, while sealers (two on PostGIS) run:
    every committed entry is chained exactly once, none from a rolled-back transaction; CLI verify ok."""
    import random
    import threading
    import time

    writers, rounds = (6, 4) if backend.name == "postgis" else (3, 3)
    sealers = 2 if backend.name == "postgis" else 1
    errors: list[BaseException] = []
    writing_done = threading.Event()
    sealed_by: list[int] = [0] * sealers

    def work(i):
        rnd = random.Random(i)
        try:
            with committed_app.app_context():
                for j in range(rounds):
                    audit.record("test.crowd", None, T0, data={"w": i, "r": j, "part": 1})
                    time.sleep(rnd.uniform(0, 0.02))  # the transaction goes on after its first entry
                    audit.record_many([{"action": "test.crowd", "data": {"w": i, "r": j, "part": p}}
                                       for p in (2, 3)], T0)
                    if j == 1:
                        audit.record("test.crowd_rolled_back", None, T0)
                        db.session.rollback()
                        continue
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def seal(k):
        try:
            with committed_app.app_context():
                while not writing_done.is_set():
                    sealed_by[k] += audit.seal_pending(limit=4)
                    db.session.remove()
                    time.sleep(0.005)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    sealer_threads = [threading.Thread(target=seal, args=(k,)) for k in range(sealers)]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in sealer_threads + threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    writing_done.set()
    for t in sealer_threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sum(sealed_by) > 0  # the sealers did run beside the writers
    with committed_app.app_context():
        crowd = entries("test.crowd")
        keys = [(e.data["w"], e.data["r"], e.data["part"]) for e in crowd]
        assert len(keys) == len(set(keys)) == writers * (rounds - 1) * 3  # each exactly once
        assert {(w, r) for w, r, _p in keys} == {(w, r) for w in range(writers) for r in range(rounds) if r != 1}
        assert entries("test.crowd_rolled_back") == []
        # Each transaction's entries keep the order they were recorded in.
        by_txn: dict[tuple[int, int], list[AuditEntry]] = {}
        for e in crowd:
            by_txn.setdefault((e.data["w"], e.data["r"]), []).append(e)
        for rows in by_txn.values():
            assert [e.data["part"] for e in rows] == [1, 2, 3]
        result = committed_app.test_cli_runner().invoke(args=["audit", "verify"])
        assert result.exit_code == 0 and "ok:" in result.output and "pending: 0 " in result.output, result.output


def test_the_worker_loop_chains_what_requests_recorded(committed_app):
    """``deliver_forever`` (the worker's and ``flask serve``'s outbox loop) seals within its interval."""
    import threading
    import time

    from server.worker import deliver_forever

    stop = threading.Event()
    loop = threading.Thread(target=deliver_forever, args=(committed_app, 0.1, stop), daemon=True)
    with committed_app.app_context():
        audit.record("test.worker", None, T0)
        db.session.commit()
        db.session.remove()
    loop.start()
    try:
        deadline = time.monotonic() + 10
        with committed_app.app_context():
            while not entries("test.worker", seal=False) and time.monotonic() < deadline:
                db.session.remove()
                time.sleep(0.05)
            assert len(entries("test.worker", seal=False)) == 1 and audit.pending_count() == 0
            db.session.remove()
    finally:
        stop.set()
        loop.join(timeout=10)
    with committed_app.app_context():
        assert audit.verify().ok
