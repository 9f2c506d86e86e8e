"""Quality control: the inspector's queue and decisions, call-back sampling, unit quality figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, AuditEntry, CallbackSample, Feedback, OutboundMessage, Unit
from server.models.types import utcnow
from server.services import audit, qc
from server.services.lifecycle import SYSTEM, Actor, transition
from tests.conftest import appeal_body, make_staff


@pytest.fixture
def desk(client, as_role):
    """An operator's headers and a function registering an appeal (by phone, with a citizen's number)."""
    _op, headers = as_role("operator")

    def register(**overrides) -> Appeal:
        res = client.post("/api/v1/appeals", json=appeal_body(**overrides), headers=headers)
        assert res.status_code == 201, res.json
        return db.session.get(Appeal, res.json["id"])

    return register


def resolve(appeal: Appeal, now: datetime, *, flagged: bool = False, far: bool = False) -> None:
    """Take ``appeal`` to ``resolved`` by the state machine, with device positions on arrive and resolve."""
    field = make_staff("field_staff", unit=appeal.unit.code)
    transition(appeal, "assign", SYSTEM, now)
    appeal.assignee_id = field.id
    actor = Actor.of(field)
    pos = {"lat": 43.2975 + (0.02 if far else 0.0), "lon": 68.2510, "accuracy_m": 10}
    transition(appeal, "accept", actor, now)
    transition(appeal, "arrive", actor, now, data={"position": pos})
    transition(appeal, "resolve", actor, now, data={"position": pos, "flagged": flagged})
    appeal.updated_at = now
    if flagged:
        appeal.flagged_at = now
    db.session.commit()


def close(appeal: Appeal, now: datetime) -> None:
    """Take a resolved appeal to ``closed``."""
    inspector = make_staff("inspector")
    transition(appeal, "verify", Actor.of(inspector), now)
    transition(appeal, "answer", SYSTEM, now, data={"answer": "Done."})
    transition(appeal, "close", SYSTEM, now)
    db.session.commit()


T = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def test_queue_lists_resolved_work_flagged_first_with_evidence(client, desk, as_role):
    old, flagged, new, open_one = desk(), desk(), desk(), desk()
    resolve(old, T)
    resolve(flagged, T + timedelta(hours=2), flagged=True, far=True)
    resolve(new, T + timedelta(hours=1))
    _i, headers = as_role("inspector")
    res = client.get("/api/v1/qc/queue", headers=headers)
    assert res.status_code == 200
    ids = [item["id"] for item in res.json["items"]]
    assert open_one.id not in ids
    assert [i for i in ids if i in (old.id, flagged.id, new.id)] == [flagged.id, old.id, new.id]
    item = next(i for i in res.json["items"] if i["id"] == flagged.id)
    kinds = {p["kind"]: p for p in item["points"]}
    assert set(kinds) >= {"appeal", "arrive", "resolve"} and item["flagged"] is True
    assert 2000 < kinds["resolve"]["distance_m"] < 2500  # 0.02° of latitude is about 2.2 km
    assert kinds["appeal"]["distance_m"] == 0.0


def test_the_queue_reads_the_same_number_of_queries_for_3_or_12_appeals(client, desk, as_role):
    """The queue carries each appeal's evidence; it used to read it appeal by appeal (N+1 queries),
    which made it the slowest read under load (bench/README.md, "Load (issue 7)")."""
    import uuid

    from sqlalchemy import event

    from server.models import Attachment

    _i, headers = as_role("inspector")

    def queries_for_queue() -> tuple[int, int]:
        seen = []

        def count(*_args):
            seen.append(1)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            res = client.get("/api/v1/qc/queue?limit=50", headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert res.status_code == 200
        return len(res.json["items"]), len(seen)

    def add(n: int) -> None:
        for i in range(n):
            appeal = desk()
            resolve(appeal, T + timedelta(minutes=i))
            db.session.add(Attachment(public_id=uuid.uuid4().hex[:20], appeal_id=appeal.id, kind="after",
                                      sha256=uuid.uuid4().hex * 2, mime="image/jpeg", size_bytes=10, width=4,
                                      height=3, uploaded_by_id=appeal.assignee_id, created_at=T,
                                      exif_lat=43.2976, exif_lon=68.2511))
            db.session.commit()

    add(3)
    few, few_queries = queries_for_queue()
    add(9)
    many, many_queries = queries_for_queue()
    assert (few, many) == (3, 12)
    assert many_queries == few_queries, (few_queries, many_queries)


def test_approve_verifies_answers_and_queues_the_reply(client, desk, as_role, app, monkeypatch):
    monkeypatch.setitem(app.config, "JAUAP_SMS_URL", "http://sms.invalid/send")  # phone appeals answer by SMS
    appeal = desk()
    resolve(appeal, T)
    _inspector, headers = as_role("inspector")
    missing = client.post(f"/api/v1/qc/appeals/{appeal.id}/approve", json={"answer": " "}, headers=headers)
    assert missing.status_code == 400  # validation: the answer must not be empty
    res = client.post(f"/api/v1/qc/appeals/{appeal.id}/approve", json={"answer": "The pothole is filled."},
                      headers=headers)
    assert res.status_code == 200 and res.json["status"] == "answered"
    db.session.expire_all()
    appeal = db.session.get(Appeal, appeal.id)
    assert appeal.status == "answered" and appeal.answer_text == "The pothole is filled."
    kinds = [(e.kind, e.actor_kind) for e in appeal.events][-2:]
    assert kinds == [("appeal.verified", "staff"), ("appeal.answered", "system")]
    out = list(db.session.scalars(select(OutboundMessage).where(OutboundMessage.appeal_id == appeal.id,
                                                                OutboundMessage.channel == "sms")))
    assert any("The pothole is filled." in (m.payload.get("text") or "") for m in out)
    again = client.post(f"/api/v1/qc/appeals/{appeal.id}/approve", json={"answer": "x"}, headers=headers)
    assert again.status_code == 422  # no longer resolved


def test_return_needs_a_reason_and_goes_back_to_the_assignee(client, desk, as_role):
    appeal = desk()
    resolve(appeal, T)
    assignee = appeal.assignee_id
    _i, headers = as_role("inspector")
    bare = client.post(f"/api/v1/qc/appeals/{appeal.id}/return", json={}, headers=headers)
    assert bare.status_code == 422 and bare.json["error"]["code"] == "reason_required"
    res = client.post(f"/api/v1/qc/appeals/{appeal.id}/return", json={"reason": "The after photo shows no work"},
                      headers=headers)
    assert res.status_code == 200 and res.json["status"] == "assigned"
    db.session.expire_all()
    appeal = db.session.get(Appeal, appeal.id)
    assert appeal.assignee_id == assignee and appeal.events[-1].data["reason"] == "The after photo shows no work"


def test_sampling_is_reproducible_and_respects_share_and_cap():
    pool = list(range(1, 101))
    assert qc.sample_size(100, 0.1, 0) == 10
    assert qc.sample_size(100, 0.1, 4) == 4
    assert qc.sample_size(7, 0.1, 0) == 1  # a small pool still yields one call
    assert qc.sample_size(0, 0.1, 0) == 0
    a, b = qc.pick(pool, 10, "seed-1"), qc.pick(list(reversed(pool)), 10, "seed-1")
    assert a == b and len(set(a)) == 10 and set(a) <= set(pool)
    assert qc.pick(pool, 10, "seed-2") != a


def test_callbacks_draw_once_a_day_show_contact_and_record_the_outcome(client, desk, as_role, app,
                                                                        monkeypatch):
    monkeypatch.setitem(app.config, "JAUAP_CALLBACK_SAMPLE_SHARE", 0.5)
    now = utcnow()
    closed = []
    for _ in range(4):
        appeal = desk()
        resolve(appeal, now)
        close(appeal, now)
        closed.append(appeal.id)
    analyst, headers = as_role("qc_analyst")
    res = client.get("/api/v1/qc/callbacks", headers=headers)
    assert res.status_code == 200
    mine = [i for i in res.json["items"] if i["appeal_id"] in closed]
    assert len(mine) == 2 and all(i["citizen"]["phone"] for i in mine)
    drawn = sorted(i["appeal_id"] for i in mine)
    # The same day: the same sample, not a new draw.
    assert sorted(i["appeal_id"] for i in client.get("/api/v1/qc/callbacks", headers=headers).json["items"]
                  if i["appeal_id"] in closed) == drawn
    audit.seal_all()  # the contact views wait in audit_pending until they are chained
    views = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.view",
                                                        AuditEntry.actor_id == analyst.id))
    assert {int(e.object_id) for e in views} >= set(drawn)
    target = mine[0]
    need = client.post(f"/api/v1/qc/callbacks/{target['id']}", json={"reached": True}, headers=headers)
    assert need.status_code == 422
    ok = client.post(f"/api/v1/qc/callbacks/{target['id']}",
                     json={"reached": True, "satisfied": 4, "comment": "Happy with the road"}, headers=headers)
    assert ok.status_code == 200 and ok.json["satisfied"] == 4
    row = db.session.get(CallbackSample, target["id"])
    assert row.recorded_by == analyst.id and row.reached is True
    twice = client.post(f"/api/v1/qc/callbacks/{target['id']}", json={"reached": False}, headers=headers)
    assert twice.status_code == 422
    left = client.get("/api/v1/qc/callbacks", headers=headers).json["items"]
    assert target["id"] not in [i["id"] for i in left]


def test_a_seeded_draw_repeats(desk):
    now = utcnow()
    ids = []
    for _ in range(6):
        appeal = desk()
        resolve(appeal, now)
        close(appeal, now)
        ids.append(appeal.id)
    first = [r.appeal_id for r in qc.draw_callbacks(now, share=0.5, per_day=0, seed="fixed")]
    assert len([i for i in first if i in ids]) >= 1
    pool = sorted(set(qc.callback_pool(now)) | set(first))
    assert qc.pick(pool, len(first), "fixed") == sorted(first)


def test_unit_quality_from_known_data(client, desk, as_role):
    appeals = [desk() for _ in range(4)]
    unit_id = appeals[0].unit_id
    assert all(a.unit_id == unit_id for a in appeals)
    now = utcnow()
    for a in appeals:
        resolve(a, now)
    # One returned and resolved again: 5 resolutions, 1 return.
    inspector = make_staff("inspector")
    transition(appeals[0], "return_work", Actor.of(inspector), now, reason="redo")
    for action in ("accept", "arrive", "resolve"):
        transition(appeals[0], action, Actor(kind="staff", role="field_staff", staff_id=appeals[0].assignee_id),
                   now)
    for a in appeals:
        close(a, now)
    db.session.add_all([Feedback(appeal_id=appeals[0].id, verdict="confirm", rating=5, created_at=now),
                        Feedback(appeal_id=appeals[1].id, verdict="confirm", rating=4, created_at=now),
                        Feedback(appeal_id=appeals[2].id, verdict="dispute", rating=1, created_at=now),
                        Feedback(appeal_id=appeals[3].id, verdict="dispute", rating=None, created_at=now)])
    db.session.add_all([
        CallbackSample(appeal_id=appeals[0].id, sampled_on=now.date(), sampled_at=now, seed="s", recorded_at=now,
                       reached=True, satisfied=5),
        CallbackSample(appeal_id=appeals[1].id, sampled_on=now.date(), sampled_at=now, seed="s", recorded_at=now,
                       reached=True, satisfied=2),
        CallbackSample(appeal_id=appeals[2].id, sampled_on=now.date(), sampled_at=now, seed="s", recorded_at=now,
                       reached=False),
    ])
    db.session.commit()
    _a, headers = as_role("qc_analyst")
    res = client.get("/api/v1/qc/units", headers=headers, query_string={"since": (now - timedelta(minutes=1))
                                                                         .isoformat()})
    assert res.status_code == 200
    code = db.session.get(Unit, unit_id).code
    figures = next(u for u in res.json["items"] if u["unit"] == code)
    assert figures["mean_rating"] == pytest.approx(3.33, abs=0.01)
    assert figures["feedback_count"] == 4 and figures["dispute_rate"] == 0.5
    assert figures["callbacks"] == 3 and figures["callback_satisfaction"] == 3.5
    assert figures["callback_reached_rate"] == pytest.approx(0.667, abs=0.001)
    assert (figures["resolved_count"], figures["returned_count"], figures["returned_rate"]) == (5, 1, 0.2)


@pytest.mark.parametrize("role,unit", [("field_staff", "U1"), ("analyst", None), ("operator", None),
                                       ("unit_head", "U1")])
def test_other_roles_are_refused(client, as_role, role, unit):
    _s, headers = as_role(role, unit=unit)
    for method, url, body in (("get", "/api/v1/qc/queue", None), ("get", "/api/v1/qc/callbacks", None),
                              ("post", "/api/v1/qc/appeals/1/approve", {"answer": "x"}),
                              ("post", "/api/v1/qc/appeals/1/return", {"reason": "x"}),
                              ("post", "/api/v1/qc/callbacks/1", {"reached": False}),
                              ("get", "/api/v1/qc/units", None)):
        res = getattr(client, method)(url, json=body, headers=headers)
        assert res.status_code in (403, 404), (url, res.status_code)


def test_inspector_cannot_draw_callbacks_and_analyst_cannot_approve(client, as_role):
    _i, ih = as_role("inspector")
    _q, qh = as_role("qc_analyst")
    assert client.get("/api/v1/qc/callbacks", headers=ih).status_code == 403
    assert client.post("/api/v1/qc/appeals/1/approve", json={"answer": "x"}, headers=qh).status_code == 403


def test_the_page_is_served_to_quality_control_only(client, as_role):
    _i, ih = as_role("inspector")
    page = client.get("/inspector/", headers=ih)
    assert page.status_code == 200 and b"js-queue" in page.data
    _f, fh = as_role("field_staff", unit="U1")
    assert client.get("/inspector/", headers=fh).status_code == 403
