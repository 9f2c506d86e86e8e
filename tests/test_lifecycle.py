"""The state machine: legal paths append events, illegal ones are refused, history is append-only."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from server.extensions import db
from server.models import STATUSES, AppealEvent, AppendOnlyError
from server.models.types import utcnow
from server.schemas import AppealIn
from server.services.errors import Forbidden, Unprocessable
from server.services.intake import register_appeal
from server.services.lifecycle import CITIZEN, SYSTEM, TRANSITIONS, Actor, allowed_actions, transition
from tests.conftest import APPEAL, appeal_body

pytestmark = pytest.mark.usefixtures("db_session")

OP = Actor("staff", "operator")
DISP = Actor("staff", "dispatcher")
FIELD = Actor("staff", "field_staff")
INSP = Actor("staff", "inspector")


def new_appeal(**overrides):
    return register_appeal(AppealIn(**appeal_body(**overrides)), actor=OP, now=utcnow()).appeal


def events(appeal):
    return [(e.kind, e.from_status, e.to_status)
            for e in AppealEvent.query.filter_by(appeal_id=appeal.id).order_by(AppealEvent.id)]


def test_every_status_is_reachable_and_every_target_is_a_status():
    targets = {t.target for t in TRANSITIONS.values()} | {"registered"}
    assert targets == set(STATUSES)
    for t in TRANSITIONS.values():
        assert t.sources <= set(STATUSES) and t.roles


def test_full_life_appends_one_event_per_step():
    appeal = new_appeal()
    steps = [("assign", DISP), ("accept", FIELD), ("depart", FIELD), ("arrive", FIELD), ("resolve", FIELD),
             ("verify", INSP), ("answer", INSP), ("close", SYSTEM)]
    for action, actor in steps:
        transition(appeal, action, actor, utcnow())
    assert appeal.status == "closed" and appeal.closed_at is not None
    log = events(appeal)
    assert [k for k, _f, _t in log] == ["appeal.registered", "appeal.routed", "appeal.assigned", "appeal.accepted",
                                         "appeal.en_route", "appeal.on_site", "appeal.resolved", "appeal.verified",
                                         "appeal.answered", "appeal.closed"]
    # each event's from is the previous event's to
    for (_k1, _f1, to), (_k2, frm, _t2) in itertools.pairwise(log):
        assert frm == to


def test_returned_work_and_citizen_dispute_reopen_the_cycle():
    appeal = new_appeal()
    for action, actor in [("assign", DISP), ("accept", FIELD), ("arrive", FIELD), ("resolve", FIELD)]:
        transition(appeal, action, actor, utcnow())
    transition(appeal, "return_work", INSP, utcnow(), reason="photo shows the pothole still there")
    assert appeal.status == "assigned"
    for action, actor in [("accept", FIELD), ("arrive", FIELD), ("resolve", FIELD), ("verify", INSP),
                          ("answer", INSP), ("close", SYSTEM)]:
        transition(appeal, action, actor, utcnow())
    ev = transition(appeal, "reopen", CITIZEN, utcnow(), reason="still broken")
    assert appeal.status == "reopened" and ev.data["reason"] == "still broken" and appeal.closed_at is None
    transition(appeal, "assign", DISP, utcnow())
    assert appeal.status == "assigned"


@pytest.mark.parametrize("kind", ["consultation", "gratitude"])
def test_consultation_and_gratitude_close_at_first_contact(kind):
    appeal = new_appeal(type=kind)
    transition(appeal, "answer_first_contact", OP, utcnow(), data={"answer": "Explained by phone"})
    transition(appeal, "close", OP, utcnow())
    assert appeal.status == "closed"


def test_complaint_cannot_be_closed_at_first_contact():
    appeal = new_appeal(type="complaint")
    with pytest.raises(Unprocessable) as exc:
        transition(appeal, "answer_first_contact", OP, utcnow())
    assert exc.value.code == "action_not_for_type" and appeal.status == "routed"


@pytest.mark.parametrize(("action", "actor", "code"), [
    ("resolve", FIELD, "illegal_transition"),   # not on site yet
    ("close", OP, "illegal_transition"),        # not answered
    ("verify", INSP, "illegal_transition"),     # nothing resolved
    ("fly", OP, "unknown_action"),
])
def test_illegal_transitions_are_refused_and_change_nothing(action, actor, code):
    appeal = new_appeal()
    before = events(appeal)
    with pytest.raises(Unprocessable) as exc:
        transition(appeal, action, actor, utcnow())
    assert exc.value.code == code
    assert appeal.status == "routed" and events(appeal) == before


def test_wrong_role_is_forbidden():
    appeal = new_appeal()
    with pytest.raises(Forbidden):
        transition(appeal, "assign", Actor("staff", "analyst"), utcnow())
    with pytest.raises(Forbidden):
        transition(appeal, "assign", FIELD, utcnow())


def test_reason_is_required_where_the_rules_say_so():
    appeal = new_appeal()
    with pytest.raises(Unprocessable) as exc:
        transition(appeal, "reject", OP, utcnow(), reason="  ")
    assert exc.value.code == "reason_required"
    transition(appeal, "forward", OP, utcnow(), reason="Competence of the regional gas company")
    assert appeal.status == "forwarded"


def test_allowed_actions_lists_only_legal_moves():
    appeal = new_appeal()
    assert "assign" in allowed_actions(appeal, DISP)
    assert allowed_actions(appeal, FIELD) == []
    assert "answer_first_contact" not in allowed_actions(appeal, OP)


def test_events_cannot_be_changed_through_the_orm():
    appeal = new_appeal()
    ev = AppealEvent.query.filter_by(appeal_id=appeal.id).first()
    ev.kind = "appeal.tampered"
    with pytest.raises(AppendOnlyError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("sql", ["UPDATE appeal_event SET kind = 'x'", "DELETE FROM appeal_event"])
def test_events_cannot_be_changed_in_the_database(sql):
    new_appeal()
    db.session.commit()  # a savepoint in the test's transaction
    with pytest.raises(DatabaseError, match="append-only"), db.session.begin_nested():
        db.session.execute(text(sql))


def test_transition_api_enforces_roles_and_rules(client, as_role):
    _op, op_headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=APPEAL, headers=op_headers).json
    url = f"/api/v1/appeals/{created['id']}/transitions"
    analyst = as_role("analyst")[1]
    assert client.post(url, json={"action": "assign"}, headers=analyst).status_code == 403
    res = client.post(url, json={"action": "close"}, headers=op_headers)
    assert res.status_code == 422 and res.json["error"]["code"] == "illegal_transition"
    assert "routed" in res.json["error"]["message"]
    res = client.post(url, json={"action": "reject"}, headers=op_headers)
    assert res.status_code == 422 and res.json["error"]["fields"][0]["field"] == "reason"
    res = client.post(url, json={"action": "reject", "reason": "Not a city matter"}, headers=op_headers)
    assert res.status_code == 200 and res.json["status"] == "rejected"
    assert res.json["history"][-1]["data"]["reason"] == "Not a city matter"


def test_dispatcher_routes_an_unrouted_appeal_by_hand(client, as_role):
    _d, headers = as_role("dispatcher")
    created = client.post("/api/v1/appeals", json={**APPEAL, "lat": 44.5, "lon": 70.0}, headers=headers).json
    assert created["status"] == "unrouted"
    url = f"/api/v1/appeals/{created['id']}/transitions"
    bad = client.post(url, json={"action": "route_manually", "sector": "S99"}, headers=headers)
    assert bad.status_code == 422 and bad.json["error"]["code"] == "unknown_sector"
    res = client.post(url, json={"action": "route_manually", "sector": "S3"}, headers=headers)
    assert res.status_code == 200 and res.json["sector"]["code"] == "S3" and res.json["route_method"] == "manual"
