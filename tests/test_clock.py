"""The clock rules of Art. 76: extension (reasoned, at most 2 months, never silent), forwarding, pause."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import OutboundMessage
from server.services import clock, replies
from server.services.errors import Forbidden, Unprocessable
from server.services.lifecycle import Actor, transition
from tests.appeal_factory import (
    INSP,
    OP,
    T0,
    end_of,
    fresh_caches,  # noqa: F401 (autouse fixture)
    local,
    new_appeal,
)
from tests.conftest import appeal_body

HEAD = Actor("staff", "unit_head")
FIELD = Actor("staff", "field_staff")


@pytest.fixture
def sms(app, monkeypatch):
    """An SMS gateway is configured: phone callers get replies (rows are only queued here)."""
    monkeypatch.setitem(app.config, "JAUAP_SMS_URL", "https://sms.example/send")


def sms_rows(appeal):
    return db.session.scalars(select(OutboundMessage).where(OutboundMessage.appeal_id == appeal.id,
                                                            OutboundMessage.channel == "sms")).all()


# --- extension ------------------------------------------------------------------------------------


def test_an_extension_moves_the_due_time_and_queues_the_citizens_notice(db_session, sms):
    appeal = new_appeal()
    assert appeal.due_at == end_of(2026, 3, 27)
    before = len(sms_rows(appeal))
    now = local(2026, 3, 20)  # Friday before Nauryz
    event = clock.extend(appeal, INSP, 5, "A contractor must repair the water main first", now)
    # 5 working days after Friday 27 March: 30 March - 3 April.
    assert appeal.due_at == end_of(2026, 4, 3) and appeal.original_due_at == end_of(2026, 3, 27)
    assert event.kind == "appeal.extended" and event.data["notice"] == "sms"
    # The notice is due within 3 working days: Nauryz (23-25 March) pushes it to Monday 30 March.
    assert event.data["notify_by"] == end_of(2026, 3, 30).isoformat()
    rows = sms_rows(appeal)
    assert len(rows) == before + 1
    assert "03.04.2026" in rows[-1].payload["text"] and "water main" in rows[-1].payload["text"]
    # The commit-time hook queues the same event again: deduplicated, nothing more.
    assert replies.queue_for_events([event], now) == 0


def test_extensions_total_at_most_two_months(db_session, sms):
    appeal = new_appeal()
    clock.extend(appeal, HEAD, 30, "Major repair", local(2026, 3, 20))
    assert clock.extension_limit(appeal) == end_of(2026, 5, 27)
    with pytest.raises(Unprocessable) as err:
        clock.extend(appeal, HEAD, 30, "More time", local(2026, 3, 21))
    assert err.value.code == "extension_beyond_limit"
    due = appeal.due_at
    assert due < end_of(2026, 5, 27)


def test_an_extension_without_a_queued_notice_is_refused(db_session, app, monkeypatch):
    monkeypatch.setitem(app.config, "JAUAP_SMS_URL", None)  # a phone caller, but no SMS gateway
    appeal = new_appeal()
    with pytest.raises(Unprocessable) as err:
        clock.extend(appeal, INSP, 5, "Waiting for a contractor", T0)
    assert err.value.code == "extension_notice_unavailable"
    assert appeal.due_at == end_of(2026, 3, 27) and appeal.original_due_at is None
    # Saying how the citizen is told instead records it, never silently.
    event = clock.extend(appeal, INSP, 5, "Waiting for a contractor", T0, notice_note="Phoned the citizen")
    assert event.data["notice"] == "none" and event.data["notice_note"] == "Phoned the citizen"


def test_an_extension_needs_a_reason_and_the_right_role(db_session, sms):
    appeal = new_appeal()
    with pytest.raises(Unprocessable) as err:
        clock.extend(appeal, INSP, 5, "  ", T0)
    assert err.value.code == "reason_required"
    for actor in (OP, FIELD, Actor("staff", "dispatcher")):
        with pytest.raises(Forbidden):
            clock.extend(appeal, actor, 5, "why", T0)
    gratitude = new_appeal(type="gratitude", description="Thanks!")
    with pytest.raises(Unprocessable):
        clock.extend(gratitude, INSP, 5, "why", T0)


def test_the_extend_endpoint(client, as_role, db_session, sms):
    _op, op_headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=appeal_body(), headers=op_headers).json
    _insp, headers = as_role("inspector")
    res = client.post(f"/api/v1/appeals/{created['id']}/extend", headers=headers,
                      json={"working_days": 10, "reason": "Needs a contractor"})
    assert res.status_code == 200, res.json
    assert res.json["due_at"] > created["due_at"]
    assert res.json["history"][-1]["kind"] == "appeal.extended"
    assert client.post(f"/api/v1/appeals/{created['id']}/extend", headers=op_headers,
                       json={"working_days": 10, "reason": "x"}).status_code == 403
    assert client.post(f"/api/v1/appeals/{created['id']}/extend", headers=headers,
                       json={"working_days": 60, "reason": "x"}).status_code == 422


# --- pause ----------------------------------------------------------------------------------------


def test_a_pause_stops_the_clock_in_working_time(db_session):
    appeal = new_appeal()
    clock.pause(appeal, OP, "Waiting for the citizen's photos", local(2026, 3, 13))  # Friday 10:00
    with pytest.raises(Unprocessable):
        clock.pause(appeal, OP, "again", local(2026, 3, 13, 11))
    event = clock.resume(appeal, OP, local(2026, 3, 16))  # Monday 10:00: 14 h + 10 h of working time
    assert event.data["paused_seconds"] == 24 * 3600
    # Friday 27 March 18:00 + 24 working hours: 6 h of Friday, the weekend skipped, 18 h of Monday.
    assert appeal.due_at == end_of(2026, 3, 30) and appeal.paused_at is None
    with pytest.raises(Unprocessable):
        clock.resume(appeal, OP, local(2026, 3, 17))


def test_a_pause_over_nauryz_counts_no_holiday(db_session):
    appeal = new_appeal()
    clock.pause(appeal, OP, "Waiting for documents", local(2026, 3, 20, 12))
    clock.resume(appeal, OP, local(2026, 3, 26, 12))  # 12 h of Friday + 12 h of Thursday
    assert appeal.due_at == end_of(2026, 3, 30)


def test_a_pause_of_an_hour_deadline_moves_it_by_calendar_time(db_session):
    appeal = new_appeal(type="incident", urgency="emergency")
    clock.pause(appeal, OP, "Waiting for the exact address", T0 + timedelta(hours=1))
    clock.resume(appeal, OP, T0 + timedelta(hours=3))
    assert appeal.due_at == T0 + timedelta(hours=6)


def test_a_pause_moves_the_extension_limit_too(db_session, sms):
    appeal = new_appeal()
    clock.extend(appeal, INSP, 5, "Contractor", T0)
    limit = clock.extension_limit(appeal)
    clock.pause(appeal, OP, "Waiting", local(2026, 3, 13))
    clock.resume(appeal, OP, local(2026, 3, 16))
    assert clock.extension_limit(appeal) > limit


def test_pause_and_resume_endpoints(client, as_role, db_session):
    _op, headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=appeal_body(), headers=headers).json
    res = client.post(f"/api/v1/appeals/{created['id']}/pause", headers=headers, json={"reason": "Need a photo"})
    assert res.status_code == 200 and res.json["paused"] is True
    res = client.post(f"/api/v1/appeals/{created['id']}/resume", headers=headers)
    assert res.status_code == 200 and res.json["paused"] is False
    assert client.post(f"/api/v1/appeals/{created['id']}/resume", headers=headers).status_code == 422
    _field, field_headers = as_role("field_staff")
    assert client.post(f"/api/v1/appeals/{created['id']}/pause", headers=field_headers,
                       json={"reason": "x"}).status_code == 403


# --- forwarding -----------------------------------------------------------------------------------


def test_forwarding_within_three_working_days_is_on_time_and_tells_the_citizen(db_session, sms):
    appeal = new_appeal()
    event = transition(appeal, "forward", OP, local(2026, 3, 5, 17), reason="A matter for the tax office")
    assert event.data["late"] is False and event.data["forward_by"] == end_of(2026, 3, 5).isoformat()
    assert appeal.flagged_at is None
    assert replies.queue_for_events([event], local(2026, 3, 5, 17)) == 1
    assert "tax office" in sms_rows(appeal)[-1].payload["text"]


def test_late_forwarding_is_recorded_and_flagged(db_session):
    appeal = new_appeal(now=local(2026, 3, 20))  # Friday before Nauryz: the limit is Monday 30 March 18:00
    assert clock.forward_deadline(appeal) == end_of(2026, 3, 30)
    event = transition(appeal, "forward", OP, local(2026, 3, 31), reason="Outside our competence")
    assert event.data["late"] is True and appeal.flagged_at == local(2026, 3, 31)


def test_no_extension_after_the_due_time(db_session, sms):
    appeal = new_appeal()
    with pytest.raises(Unprocessable) as err:
        clock.extend(appeal, INSP, 5, "Too late", end_of(2026, 3, 27) + timedelta(minutes=1))
    assert err.value.code == "extension_after_due"


def test_an_extension_rearms_the_at_risk_mark_for_the_new_due_time(db_session, sms):
    appeal = new_appeal(type="incident", urgency="normal")  # due Thursday 5 March 18:00
    [risk] = clock.sla_tick(local(2026, 3, 5, 9))
    assert risk.kind == "appeal.sla_at_risk" and appeal.sla_state == "at_risk"
    clock.extend(appeal, HEAD, 10, "Parts on order", local(2026, 3, 5, 10))
    assert appeal.sla_state == "on_time" and appeal.sla_at_risk_at is None
    assert clock.sla_tick(local(2026, 3, 6)) == []
    [again] = clock.sla_tick(appeal.due_at - timedelta(hours=1))
    assert again.kind == "appeal.sla_at_risk"


# --- after a reopening --------------------------------------------------------------------------


def test_an_extension_after_a_reopening_works_from_the_new_term(db_session, sms):
    appeal = new_appeal(type="consultation")
    transition(appeal, "answer_first_contact", OP, end_of(2026, 3, 27) + timedelta(hours=1))  # late
    transition(appeal, "close", OP, end_of(2026, 3, 27) + timedelta(hours=2))
    assert appeal.sla_state == "breached"
    transition(appeal, "reopen", INSP, local(2026, 6, 1), reason="The answer missed the question")
    assert appeal.due_at == end_of(2026, 6, 22) and appeal.original_due_at is None
    assert clock.extension_limit(appeal) == end_of(2026, 8, 22)
    event = clock.extend(appeal, HEAD, 5, "The archive must be searched", local(2026, 6, 10))
    # 5 working days after Monday 22 June: 23-26, 29 June; the limit counts from the new term.
    assert appeal.due_at == end_of(2026, 6, 29) and appeal.original_due_at == end_of(2026, 6, 22)
    assert event.data["previous_due_at"] == end_of(2026, 6, 22).isoformat()
    assert event.data["limit"] == end_of(2026, 8, 22).isoformat()
