"""The dispatcher map's snapshot and the live stream fit together: no event falls between them.

The map loads ``GET /map/appeals`` (open appeals plus ``last_event_id``), then replays and follows
events after that id, dropping every event at or below it as already shown. So each event up to
``last_event_id`` must be reflected in the snapshot's rows: otherwise the dispatcher never sees it,
neither on the map (until the next full resync) nor in the live list.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import event, select

from server.extensions import db
from server.models import Staff
from tests.conftest import APPEAL, PASSWORD, make_staff

# SQLite runs every transaction, reads included, under BEGIN IMMEDIATE (server/database.py): one at a
# time, so nothing can commit between two reads of one request there. PostgreSQL reads in READ
# COMMITTED, a fresh view per statement: the race below exists only there.
pytestmark = pytest.mark.parametrize("backend", ["postgis"], indirect=True)


def token(client, username: str) -> dict:
    res = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert res.status_code == 200, res.json
    return {"Authorization": f"Bearer {res.json['token']}"}


def test_an_event_committed_while_the_snapshot_is_read_is_either_in_it_or_after_it(committed_app):
    """A reassign commits between the snapshot's reads: the map or the stream must still show it."""
    client = committed_app.test_client()
    with committed_app.app_context():
        make_staff("operator", username="op")
        make_staff("dispatcher", username="disp")
        db.session.commit()
        db.session.remove()
    sector = client.get(f"/api/v1/sectors/lookup?lat={APPEAL['lat']}&lon={APPEAL['lon']}").json["sector"]["code"]
    with committed_app.app_context():
        for name in ("f1", "f2"):
            make_staff("field_staff", unit=sector.replace("S", "U"), username=name)
        db.session.commit()
        ids = {s.username: s.id for s in db.session.scalars(select(Staff))}
        db.session.remove()
    f1 = token(client, "f1")
    assert client.post("/api/v1/me/duty", json={"on_duty": True}, headers=f1).status_code == 200
    res = client.post("/api/v1/appeals", json={**APPEAL, "description": "Telegram-like appeal."},
                      headers={**token(client, "op"), "Idempotency-Key": str(uuid.uuid4())})
    assert res.status_code == 201, res.json
    appeal_id = res.json["id"]
    disp = token(client, "disp")
    assert client.get(f"/api/v1/appeals/{appeal_id}", headers=disp).json["status"] == "assigned"

    # Between the snapshot's two reads (its rows and the newest event id, whichever comes first), another
    # dispatcher's reassign commits on its own connection, in another thread: a busy centre's everyday race.
    done: dict = {}

    def reassign():
        other = committed_app.test_client()
        try:
            done["res"] = other.post(f"/api/v1/appeals/{appeal_id}/reassign",
                                     json={"staff_id": ids["f2"], "reason": "closer"}, headers=disp)
        except BaseException as exc:  # reported by the assertion below
            done["error"] = repr(exc)

    def between(conn, cursor, statement, *_args):
        text = " ".join(statement.lower().split())
        rows = text.startswith("select") and "from appeal " in text and "order by appeal.id" in text
        if (rows or "max(appeal_event.id)" in text) and not done:
            worker = threading.Thread(target=reassign)
            worker.start()
            worker.join(timeout=20)

    with committed_app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", between)
    try:
        snap = client.get("/api/v1/map/appeals", headers=disp)
    finally:
        event.remove(engine, "after_cursor_execute", between)
    assert "res" in done, done
    assert done["res"].status_code == 200, done["res"].json
    assert snap.status_code == 200, snap.json
    row = {r[0]: dict(zip(snap.json["fields"], r, strict=True)) for r in snap.json["rows"]}[appeal_id]
    last = snap.json["last_event_id"]

    # What the dispatcher's screen then gets: the events after the snapshot (the catch-up and the stream).
    after = client.get(f"/api/v1/events?after={last}", headers=disp).json["items"]
    reassigned = [e for e in after if e["kind"] == "appeal.reassigned" and e["appeal"]["id"] == appeal_id]
    assert row["assignee_id"] == ids["f2"] or reassigned, (
        f"the reassign to f2 is neither in the snapshot (assignee {row['assignee_id']}) nor after its "
        f"last_event_id {last}: the dispatcher never sees it")


def test_the_snapshot_lists_the_event_ids_it_saw_in_the_look_back_window(client, as_role):
    """``reflected_event_ids``: every event id in (last - 300, last], read in the same statement as
    ``last_event_id``; the page shows any id up to ``last_event_id`` missing from it (a late commit)."""
    from server.models import AppealEvent
    from server.services.mapview import REFLECTED_WINDOW

    _op, op = as_role("operator")
    for i in range(3):
        assert client.post("/api/v1/appeals", json={**APPEAL, "description": f"Pothole {i}."},
                           headers=op).status_code == 201
    _d, disp = as_role("dispatcher")
    snap = client.get("/api/v1/map/appeals", headers=disp).json
    ids = list(db.session.scalars(select(AppealEvent.id).order_by(AppealEvent.id)))
    assert snap["last_event_id"] == ids[-1]
    assert snap["reflected_event_ids"] == [i for i in ids if i > ids[-1] - REFLECTED_WINDOW]
    assert len(snap["reflected_event_ids"]) >= 3
