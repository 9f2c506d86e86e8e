"""SLA policies from the admins' table, the stored SLA states, and the worker's SLA tick (frozen clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from server.extensions import db
from server.models import AppealEvent, OutboundMessage, PushSubscription, SlaPolicy
from server.services import calendar, clock, mapview, sla
from server.services.lifecycle import CITIZEN, SYSTEM, Actor, transition
from server.services.staff import issue_token
from tests.appeal_factory import (
    INSP,
    OP,
    T0,
    end_of,
    fresh_caches,  # noqa: F401 (autouse fixture)
    local,
    new_appeal,
)
from tests.conftest import make_staff


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


# --- reopening: a fresh term ----------------------------------------------------------------------

REOPEN_AT = local(2026, 6, 1)  # Monday 1 June 2026, long after the first term (due Friday 27 March)


def answered_late_and_closed(**overrides):
    """A consultation answered after its due time (stored ``breached``) and closed."""
    appeal = new_appeal(type="consultation", **overrides)
    transition(appeal, "answer_first_contact", OP, end_of(2026, 3, 27) + timedelta(hours=1))
    transition(appeal, "close", OP, end_of(2026, 3, 27) + timedelta(hours=2))
    assert appeal.sla_state == "breached" and appeal.sla_breached_at is not None
    return appeal


def test_a_reopened_appeal_gets_a_fresh_term_from_the_reopening(db_session):
    appeal = answered_late_and_closed()
    first_due = appeal.due_at
    assert first_due == end_of(2026, 3, 27)
    appeal.sla_warned_at = appeal.sla_at_risk_at = end_of(2026, 3, 26)  # marks of the first cycle
    event = transition(appeal, "reopen", INSP, REOPEN_AT, reason="The citizen says nothing was explained")
    # 15 working days counted from the day after the reopening: 2-5, 8-12, 15-19, 22 June.
    assert appeal.due_at == end_of(2026, 6, 22)
    assert appeal.due_at == sla.due_at("consultation", appeal.topic_code, appeal.urgency, REOPEN_AT)
    assert (appeal.sla_state, appeal.sla_warned_at, appeal.sla_at_risk_at, appeal.sla_breached_at,
            appeal.paused_at) == (None, None, None, None, None)
    # The previous cycle's outcome stays on record in the (append-only) event.
    assert event.data["previous_due_at"] == first_due.isoformat()
    assert event.data["previous_sla_state"] == "breached"
    assert event.data["due_at"] == end_of(2026, 6, 22).isoformat()
    assert sla.display_state(appeal, REOPEN_AT + timedelta(hours=1)) == "on_time"
    # The at-risk share is measured from the reopening, not from the registration in March.
    assert sla.cycle_start(appeal) == REOPEN_AT
    assert sla.display_state(appeal, local(2026, 6, 2)) == "on_time"
    assert sla.display_state(appeal, local(2026, 6, 18)) == "at_risk"
    # The dispatcher map and its counters agree (a term counted from March would be at risk by now).
    viewer = make_staff("dispatcher")
    board = mapview.open_appeals(viewer, local(2026, 6, 2))
    [row] = [r for r in board["rows"] if r[0] == appeal.id]
    assert row[board["fields"].index("sla")] == "on_time"
    counters = mapview.sector_counters(viewer, local(2026, 6, 2))
    assert sum(c["at_risk"] + c["breached"] for c in counters) == 0
    counters = mapview.sector_counters(viewer, local(2026, 6, 18))
    assert sum(c["at_risk"] for c in counters) == 1


def test_every_map_row_says_what_its_appeal_says(db_session):
    """The map reads columns only (the point's coordinates from the database, the term's start in SQL, only
    for answered appeals): each row must still match the appeal's own point and display_state - fresh,
    answered and reopened, paused, late - before and after the reopened one's at-risk mark."""
    from server import geosql

    fresh = new_appeal(type="incident")
    late = new_appeal(type="complaint", now=T0 - timedelta(days=60))
    reopened = answered_late_and_closed()
    transition(reopened, "reopen", INSP, REOPEN_AT, reason="The citizen says nothing was explained")
    paused = new_appeal(type="proposal")
    clock.pause(paused, OP, "Waiting for the gas company", T0 + timedelta(hours=1))
    db.session.flush()
    viewer = make_staff("dispatcher")
    for now in (local(2026, 6, 2), local(2026, 6, 18)):
        board = mapview.open_appeals(viewer, now)
        rows = {r[0]: dict(zip(board["fields"], r, strict=True)) for r in board["rows"]}
        assert set(rows) == {fresh.id, late.id, reopened.id, paused.id}
        for appeal in (fresh, late, reopened, paused):
            lon, lat = geosql.lonlat(appeal.location)
            assert rows[appeal.id] == {
                "id": appeal.id, "lon": round(lon, 6), "lat": round(lat, 6), "status": appeal.status,
                "type": appeal.type, "topic": appeal.topic_code,
                "sector": appeal.sector.code if appeal.sector else None,
                "sla": sla.display_state(appeal, now), "assignee_id": appeal.assignee_id, "reg_no": appeal.reg_no}
        assert rows[reopened.id]["sla"] == ("on_time" if now.day == 2 else "at_risk")
        assert rows[late.id]["sla"] == rows[fresh.id]["sla"] == "breached"


def test_a_reopened_gratitude_still_has_no_deadline(db_session):
    appeal = new_appeal(type="gratitude", description="Thank you for the new lights!")
    transition(appeal, "answer_first_contact", OP, T0 + timedelta(minutes=5))
    transition(appeal, "close", OP, T0 + timedelta(minutes=6))
    event = transition(appeal, "reopen", CITIZEN, REOPEN_AT, reason="Please pass it to the unit too")
    assert appeal.due_at is None and appeal.sla_state is None
    assert event.data["previous_due_at"] is None and event.data["previous_sla_state"] is None
    assert sla.display_state(appeal, REOPEN_AT + timedelta(days=90)) == "none"
    assert clock.sla_tick(REOPEN_AT + timedelta(days=90)) == []


def test_the_tick_does_not_escalate_a_freshly_reopened_appeal(db_session):
    appeal = new_appeal(type="incident", urgency="emergency")  # due T0 + 4 h
    dispatcher = make_staff("dispatcher")
    [first] = clock.sla_tick(T0 + timedelta(hours=5))
    assert first.kind == "appeal.sla_breached" and dispatcher.id in first.data["notify"]
    field, insp, disp = Actor("staff", "field_staff"), INSP, Actor("staff", "dispatcher")
    for action, actor in [("assign", disp), ("accept", field), ("arrive", field), ("resolve", field),
                          ("verify", insp), ("answer", insp)]:
        transition(appeal, action, actor, T0 + timedelta(hours=6))
    assert appeal.sla_state == "breached"
    event = transition(appeal, "reopen", CITIZEN, REOPEN_AT, reason="The hole is still there")
    assert event.data["previous_sla_state"] == "breached"
    assert appeal.due_at == REOPEN_AT + timedelta(hours=4)
    assert clock.sla_tick(REOPEN_AT + timedelta(minutes=1)) == []  # no instant breach, no escalation
    assert clock.sla_tick(REOPEN_AT + timedelta(hours=2)) == []  # half of the new term: still on time
    [risk] = clock.sla_tick(REOPEN_AT + timedelta(hours=3))  # 3 of 4 hours since the reopening
    assert risk.kind == "appeal.sla_at_risk" and appeal.sla_state == "at_risk"
    [breach] = clock.sla_tick(REOPEN_AT + timedelta(hours=4))
    assert breach.kind == "appeal.sla_breached" and breach.data["due_at"] == appeal.due_at.isoformat()
    assert len(events_of(appeal, "appeal.sla_breached")) == 2  # one per cycle


def test_compliance_counts_the_latest_cycle_of_a_reopened_appeal(db_session):
    from server.services.analytics import Filters, timeliness

    appeal = answered_late_and_closed()
    assert timeliness(Filters())["on_time"] == 0  # the first answer came after the first term
    transition(appeal, "reopen", CITIZEN, REOPEN_AT, reason="The answer missed the question")
    for action, actor in [("assign", Actor("staff", "dispatcher")), ("accept", Actor("staff", "field_staff")),
                          ("arrive", Actor("staff", "field_staff")), ("resolve", Actor("staff", "field_staff")),
                          ("verify", INSP), ("answer", INSP), ("close", SYSTEM)]:
        transition(appeal, action, actor, local(2026, 6, 10))
    assert appeal.sla_state == "met"  # answered within the new term
    figures = timeliness(Filters())
    assert (figures["closed"], figures["on_time"], figures["compliance"]) == (1, 1, 1.0)
