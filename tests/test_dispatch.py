"""The assignment engine: the documented rule, accept/decline, reassign, escalation, duty, positions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.extensions import db
from server.models.types import utcnow
from server.schemas import AppealIn, PositionIn
from server.services import dispatch, positions
from server.services.errors import Unprocessable
from server.services.intake import register_appeal
from server.services.lifecycle import Actor
from tests.conftest import APPEAL, appeal_body, make_staff

pytestmark = pytest.mark.usefixtures("db_session")
OP = Actor("staff", "operator")


def unit_of_default_point(client, headers):
    return client.get("/api/v1/sectors/lookup?lat=43.2975&lon=68.251").json["sector"]["code"].replace("S", "U")


def on_duty(unit, name, lon=None, lat=None):
    s = make_staff("field_staff", unit=unit, username=name)
    dispatch.set_duty(s, True, utcnow())
    if lon is not None:
        positions.report_position(s.id, PositionIn(lon=lon, lat=lat, accuracy_m=5), utcnow())
    db.session.flush()
    return s


def register(**kw):
    return register_appeal(AppealIn(**appeal_body(**kw)), actor=OP, now=utcnow())


def test_nobody_on_duty_leaves_the_appeal_routed(client):
    unit = unit_of_default_point(client, {})
    make_staff("field_staff", unit=unit, username="off-duty")
    result = register()
    assert result.appeal.status == "routed" and result.appeal.assignee_id is None


def test_fewest_open_assignments_then_nearest(client):
    unit = unit_of_default_point(client, {})
    near = on_duty(unit, "near", lon=68.2511, lat=43.2976)
    far = on_duty(unit, "far", lon=68.30, lat=43.33)
    first = register().appeal
    assert first.assignee_id == near.id  # equal load: nearest wins
    second = register(description="second").appeal
    assert second.assignee_id == far.id  # near now has one open assignment
    events = [e for e in register(description="third").events if e.kind == "appeal.assigned"]
    assert events and events[0].data["rule"] == "fewest_open_then_nearest"


def test_off_duty_and_other_units_are_never_picked(client):
    unit = unit_of_default_point(client, {})
    other = "U2" if unit != "U2" else "U3"
    on_duty(other, "elsewhere", lon=68.2511, lat=43.2976)
    off = make_staff("field_staff", unit=unit, username="sleeping")
    assert off.on_duty is False
    assert register().appeal.assignee_id is None


def test_accept_only_by_assignee_and_decline_reassigns_to_someone_else(client):
    unit = unit_of_default_point(client, {})
    a = on_duty(unit, "a", lon=68.2511, lat=43.2976)
    b = on_duty(unit, "b", lon=68.26, lat=43.30)
    appeal = register().appeal
    assert appeal.assignee_id == a.id
    with pytest.raises(Unprocessable):
        dispatch.accept(appeal, Actor.of(b), utcnow())
    with pytest.raises(Unprocessable):
        dispatch.decline(appeal, Actor.of(a), utcnow(), reason=" ")
    events = dispatch.decline(appeal, Actor.of(a), utcnow(), reason="Flat tyre")
    assert [e.kind for e in events] == ["appeal.declined", "appeal.assigned"]
    assert appeal.assignee_id == b.id and appeal.status == "assigned"
    dispatch.accept(appeal, Actor.of(b), utcnow())
    assert appeal.status == "accepted"


def test_unaccepted_assignment_escalates_once(client, app):
    unit = unit_of_default_point(client, {})
    on_duty(unit, "slow", lon=68.2511, lat=43.2976)
    head = make_staff("unit_head", unit=unit, username="head")
    appeal = register().appeal
    later = utcnow() + timedelta(minutes=app.config["JAUAP_ACCEPT_TIMEOUT_MIN"] + 1)
    assert dispatch.escalate_unaccepted(utcnow()) == []
    events = dispatch.escalate_unaccepted(later)
    assert [e.appeal_id for e in events] == [appeal.id]
    assert events[0].kind == "appeal.escalated" and head.id in events[0].data["notify"]
    assert dispatch.escalate_unaccepted(later + timedelta(hours=1)) == []


def test_dispatcher_reassigns_to_person_or_unit_via_api(client, as_role):
    unit = unit_of_default_point(client, {})
    other = "U2" if unit != "U2" else "U3"
    a = on_duty(unit, "a1", lon=68.2511, lat=43.2976)
    b = on_duty(other, "b1")
    _d, disp = as_role("dispatcher")
    created = client.post("/api/v1/appeals", json=APPEAL, headers=disp).json
    assert created["status"] == "assigned"
    url = f"/api/v1/appeals/{created['id']}/reassign"
    assert client.post(url, json={}, headers=disp).status_code == 400
    res = client.post(url, json={"staff_id": b.id, "reason": "closer crew"}, headers=disp)
    assert res.status_code == 200 and res.json["history"][-1]["kind"] == "appeal.reassigned"
    res = client.post(url, json={"unit": unit}, headers=disp)
    assert res.status_code == 200
    kinds = [h["kind"] for h in res.json["history"]]
    assert kinds[-2:] == ["appeal.moved", "appeal.assigned"] and res.json["status"] == "assigned"
    assert a.id  # the home unit's worker got it back
    _h, head = as_role("unit_head", unit=other)
    assert client.post(url, json={"unit": other}, headers=head).status_code == 404  # not their appeal now


def test_positions_are_rate_limited_and_staleness_is_shown(client, as_role, app):
    worker, headers = as_role("field_staff", unit="U1")
    ok = client.post("/api/v1/me/position", json={"lat": 43.3, "lon": 68.25, "accuracy_m": 12}, headers=headers)
    assert ok.status_code == 201
    again = client.post("/api/v1/me/position", json={"lat": 43.3, "lon": 68.25}, headers=headers)
    assert again.status_code == 429 and again.json["error"]["code"] == "position_too_frequent"
    _d, disp = as_role("dispatcher")
    seen = {p["staff_id"]: p for p in client.get("/api/v1/staff/positions", headers=disp).json}
    assert seen[worker.id]["stale"] is False
    purged = positions.purge_history(utcnow() + timedelta(days=app.config["JAUAP_POSITION_RETENTION_DAYS"] + 1))
    assert purged >= 1


def test_duty_toggle_and_shift_roster(client, as_role):
    worker, headers = as_role("field_staff", unit="U1")
    assert client.post("/api/v1/me/duty", json={"on_duty": True}, headers=headers).json == {"on_duty": True}
    _a, admin = as_role("admin")
    assert client.patch(f"/api/v1/staff/{worker.id}", json={"shift": "B"}, headers=admin).status_code == 200
    assert client.patch(f"/api/v1/staff/{worker.id}", json={"shift": "Z"}, headers=admin).status_code == 422
    _d, disp = as_role("dispatcher")
    roster = {s["code"]: s for s in client.get("/api/v1/shifts", headers=disp).json}
    assert set(roster) == {"A", "B", "C", "D"}
    assert {"id": worker.id, "username": worker.username, "role": "field_staff", "on_duty": True} in \
        roster["B"]["staff"]
    assert client.get("/api/v1/shifts", headers=headers).status_code == 403
