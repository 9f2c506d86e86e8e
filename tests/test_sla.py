"""SLA policies from the admins' table, the stored SLA states, and the worker's SLA tick (frozen clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.models import AppealEvent, OutboundMessage, PushSubscription, SlaPolicy
from server.schemas import AppealIn
from server.services import calendar, clock, mapview, sla
from server.services.intake import register_appeal
from server.services.lifecycle import SYSTEM, Actor, transition
from server.services.staff import issue_token
from tests.conftest import appeal_body, make_staff

ALMATY = ZoneInfo("Asia/Almaty")
OP = Actor("staff", "operator")
INSP = Actor("staff", "inspector")
# Monday 2 March 2026, 10:00 in Turkestan.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ALMATY).astimezone(UTC)


def end_of(y, m, d):
    return datetime(y, m, d, 18, 0, tzinfo=ALMATY).astimezone(UTC)


@pytest.fixture(autouse=True)
def _fresh_caches(app):
    """Policies and overrides are cached per app: drop them around each test (tests roll their rows back)."""
    with app.app_context():
        sla.invalidate()
        calendar.invalidate()
    yield
    with app.app_context():
        sla.invalidate()
        calendar.invalidate()


def new_appeal(now=T0, **overrides):
    return register_appeal(AppealIn(**appeal_body(**overrides)), actor=OP, now=now).appeal


def events_of(appeal, kind):
    return db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id,
                                                        AppealEvent.kind == kind)).all()


def device(staff, now=T0):
    """A live Web Push subscription for ``staff`` (so pushes become outbox rows)."""
    _token, row = issue_token(staff, now, 24 * 365)
    sub = PushSubscription(staff_id=staff.id, token_id=row.id, endpoint=f"https://push.example/{staff.id}",
                           p256dh="k", auth="a", created_at=now)
    db.session.add(sub)
    db.session.flush()
    return sub


# --- the policy table -----------------------------------------------------------------------------


def test_the_migration_seeds_the_art_76_defaults(db_session):
    rows = {(p.appeal_type, p.topic_code, p.urgency): (p.mode, p.amount) for p in sla.list_policies()}
    assert rows[("complaint", "", "")] == ("working_days", 15)
    assert rows[("consultation", "", "")] == ("working_days", 15)
    assert rows[("proposal", "", "")] == ("working_days", 15)
    assert rows[("incident", "", "emergency")] == ("hours", 4)
    assert rows[("incident", "", "urgent")] == ("hours", 24)
    assert rows[("incident", "", "normal")] == ("working_days", 3)
    assert rows[("gratitude", "", "")] == ("none", None)


def test_deadlines_by_type_and_urgency_on_fixed_dates(db_session):
    # 15 working days from Monday 2 March 2026 skip 9 March and Nauryz (23-25 March).
    assert sla.due_at("complaint", "roads", None, T0) == end_of(2026, 3, 27)
    assert sla.due_at("incident", "roads", "emergency", T0) == T0 + timedelta(hours=4)
    assert sla.due_at("incident", "roads", "urgent", T0) == T0 + timedelta(hours=24)
    assert sla.due_at("incident", "roads", "normal", T0) == end_of(2026, 3, 5)
    assert sla.due_at("incident", "roads", None, T0) == end_of(2026, 3, 5)
    assert sla.due_at("gratitude", "roads", None, T0) is None


def test_a_topic_policy_beats_the_type_default_and_edits_apply_at_once(db_session):
    assert new_appeal().due_at == end_of(2026, 3, 27)
    sla.save_policy("complaint", "roads", "", "working_days", 5, None, T0)
    # 5 working days: 3-6 March, then 10 March (9 March is the observed Women's Day). The cache is dropped on edit.
    assert new_appeal(description="Another pothole.").due_at == end_of(2026, 3, 10)
    assert sla.due_at("complaint", "heating", None, T0) == end_of(2026, 3, 27)  # other topics keep the default
    sla.save_policy("complaint", "roads", "", "hours", 48, None, T0)
    assert sla.due_at("complaint", "roads", None, T0) == T0 + timedelta(hours=48)


def test_admins_edit_policies_through_the_api(client, as_role, db_session):
    _admin, headers = as_role("admin")
    listed = client.get("/api/v1/admin/sla-policies", headers=headers)
    assert listed.status_code == 200 and len(listed.json["policies"]) >= 8
    res = client.put("/api/v1/admin/sla-policies", headers=headers,
                     json={"appeal_type": "incident", "topic_code": "heating", "urgency": "urgent", "mode": "hours",
                           "amount": 6})
    assert res.status_code == 200, res.json
    assert sla.rule_for("incident", "heating", "urgent") == sla.Rule("hours", 6)
    assert sla.rule_for("incident", "roads", "urgent") == sla.Rule("hours", 24)
    assert client.put("/api/v1/admin/sla-policies", headers=headers,
                      json={"appeal_type": "complaint", "topic_code": "nope", "mode": "hours",
                            "amount": 6}).status_code == 422
    assert client.put("/api/v1/admin/sla-policies", headers=headers,
                      json={"appeal_type": "complaint", "mode": "hours"}).status_code == 422
    assert client.delete(f"/api/v1/admin/sla-policies/{res.json['id']}", headers=headers).status_code == 204
    assert sla.rule_for("incident", "heating", "urgent") == sla.Rule("hours", 24)
    _op, op_headers = as_role("operator")
    assert client.get("/api/v1/admin/sla-policies", headers=op_headers).status_code == 403


def test_admins_edit_the_calendar_through_the_api(client, as_role, db_session):
    _admin, headers = as_role("admin")
    res = client.put("/api/v1/admin/calendar", headers=headers,
                     json={"day": "2026-12-19", "kind": "working", "note": "transfer"})
    assert res.status_code == 200, res.json
    year = client.get("/api/v1/admin/calendar?year=2026", headers=headers).json
    assert {"day": "2026-12-16", "name": "Independence Day"} in year["holidays"]
    assert year["overrides"] == [{"day": "2026-12-19", "kind": "working", "note": "transfer"}]
    assert calendar.is_working_day(datetime(2026, 12, 19).date())
    assert client.delete("/api/v1/admin/calendar/2026-12-19", headers=headers).status_code == 204
    assert client.delete("/api/v1/admin/calendar/2026-12-19", headers=headers).status_code == 404
    assert not calendar.is_working_day(datetime(2026, 12, 19).date())
    _op, op_headers = as_role("dispatcher")
    assert client.put("/api/v1/admin/calendar", headers=op_headers,
                      json={"day": "2026-12-19", "kind": "working"}).status_code == 403


# --- states ---------------------------------------------------------------------------------------


def test_states_on_a_frozen_clock():
    due = T0 + timedelta(hours=4)
    assert sla.state_at(T0, due, T0 + timedelta(hours=2), 0.75) == "on_time"
    assert sla.state_at(T0, due, T0 + timedelta(hours=3), 0.75) == "at_risk"
    assert sla.state_at(T0, due, due, 0.75) == "breached"
    assert sla.state_at(T0, None, due, 0.75) == "none"


def test_met_or_breached_is_stored_at_close(db_session):
    on_time = new_appeal(type="consultation")
    transition(on_time, "answer_first_contact", OP, T0 + timedelta(hours=1))
    assert on_time.sla_state == "met"
    late = new_appeal(type="consultation", description="Another question.")
    transition(late, "answer_first_contact", OP, end_of(2026, 3, 27) + timedelta(minutes=1))
    assert late.sla_state == "breached" and late.sla_breached_at is not None


# --- the tick -------------------------------------------------------------------------------------


def test_the_tick_marks_at_risk_then_breached_once_each_and_escalates(db_session):
    appeal = new_appeal(type="incident", urgency="emergency")  # due T0 + 4 h
    unit_code = appeal.unit.code
    assignee = make_staff("field_staff", unit=unit_code)
    head = make_staff("unit_head", unit=unit_code)
    dispatcher = make_staff("dispatcher")
    for person in (assignee, head, dispatcher):
        device(person)
    appeal.assignee_id = assignee.id
    appeal.status = "accepted"
    db.session.flush()

    assert clock.sla_tick(T0 + timedelta(hours=2)) == []
    [risk] = clock.sla_tick(T0 + timedelta(hours=3))
    assert risk.kind == "appeal.sla_at_risk" and appeal.sla_state == "at_risk"
    assert appeal.sla_at_risk_at == T0 + timedelta(hours=3) and appeal.sla_warned_at is not None
    warn = db.session.scalars(select(OutboundMessage).where(OutboundMessage.staff_id == assignee.id)).all()
    assert [m.payload["kind"] for m in warn] == ["sla.warning"]
    assert clock.sla_tick(T0 + timedelta(hours=3, minutes=30)) == []  # marked once

    [breach] = clock.sla_tick(T0 + timedelta(hours=4))
    assert breach.kind == "appeal.sla_breached" and appeal.sla_state == "breached"
    assert head.id in breach.data["notify"] and dispatcher.id in breach.data["notify"]
    kinds = {(m.staff_id, m.payload["kind"]) for m in db.session.scalars(select(OutboundMessage))}
    assert {(assignee.id, "sla.breached"), (head.id, "sla.breached"), (dispatcher.id, "sla.breached")} <= kinds
    outbox_rows = db.session.scalar(select(func.count()).select_from(OutboundMessage))
    assert clock.sla_tick(T0 + timedelta(hours=5)) == []  # idempotent: nothing more
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == outbox_rows
    assert len(events_of(appeal, "appeal.sla_breached")) == 1
    assert len(events_of(appeal, "appeal.sla_at_risk")) == 1


def test_the_tick_skips_paused_and_done_appeals_and_gratitude(db_session):
    paused = new_appeal(type="incident", urgency="emergency")
    clock.pause(paused, OP, "Waiting for the exact address", T0 + timedelta(hours=1))
    done = new_appeal(type="consultation", description="A question.")
    transition(done, "answer_first_contact", OP, T0 + timedelta(minutes=5))
    new_appeal(type="gratitude", description="Thank you!")
    assert clock.sla_tick(T0 + timedelta(days=60)) == []


def test_the_map_shows_the_stored_state(db_session):
    appeal = new_appeal(type="incident", urgency="emergency")
    clock.sla_tick(T0 + timedelta(hours=4))
    assert appeal.sla_state == "breached"
    assert sla.display_state(appeal, T0 + timedelta(hours=4)) == "breached"
    clock.pause(new_appeal(type="incident", urgency="emergency", description="x"), OP, "info", T0)
    assert mapview.sla_state(T0, T0 + timedelta(hours=4), T0 + timedelta(hours=3), 0.75) == "at_risk"


def test_the_worker_tick_publishes_and_a_second_tick_adds_nothing(committed_app):
    from server.worker import tick

    with committed_app.app_context():
        new_appeal(type="incident", urgency="emergency")
        db.session.commit()
        first = tick(T0 + timedelta(hours=5))
        assert first["sla_marked"] == 1
        db.session.remove()
        assert "sla_marked" not in tick(T0 + timedelta(hours=6))
        kinds = db.session.scalars(select(AppealEvent.kind).where(AppealEvent.kind.like("appeal.sla_%"))).all()
        assert kinds == ["appeal.sla_breached"]
        assert SYSTEM.kind == "system"
        assert db.session.scalar(select(func.count()).select_from(SlaPolicy)) >= 8
