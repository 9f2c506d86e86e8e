"""SLA regulation: the admins' policies and calendar overrides; extending, pausing and resuming the clock."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from server.api import bp
from server.api.common import commit, viewer
from server.api.outputs import AppealOut, appeal_out
from server.api.spec import endpoint
from server.extensions import db
from server.models import Appeal
from server.models.types import utcnow
from server.schemas import Strict
from server.services import appeals as appeal_service
from server.services import calendar, clock, sla
from server.services.lifecycle import Actor

AppealType = Literal["consultation", "incident", "proposal", "complaint", "gratitude"]


class PolicyIn(Strict):
    """One deadline policy; ``topic_code`` / ``urgency`` empty for any topic / any urgency (the type default)."""

    appeal_type: AppealType
    topic_code: str = Field(default="", max_length=32, description="A topic code, or empty for every topic.")
    urgency: Literal["", "emergency", "urgent", "normal"] = Field(default="", description="Incidents only.")
    mode: Literal["working_days", "hours", "none"] = Field(description="Deadline in working days, hours, or none.")
    amount: int | None = Field(default=None, ge=1, le=400, description="Working days or hours; empty for none.")


class PolicyOut(BaseModel):
    """One deadline policy row."""

    id: int
    appeal_type: str
    topic_code: str
    urgency: str
    mode: str
    amount: int | None
    updated_at: datetime


class PolicyList(BaseModel):
    """Every policy row (the most specific row matching an appeal wins)."""

    policies: list[PolicyOut]


class CalendarQuery(Strict):
    """Which year to list."""

    year: int = Field(default_factory=lambda: utcnow().year, ge=2000, le=2100)


class OverrideIn(Strict):
    """A day's override: ``working`` (a transferred working Saturday) or ``day_off`` (a transfer, an extra day)."""

    day: date
    kind: Literal["working", "day_off"]
    note: str = Field(default="", max_length=200)


class OverrideOut(BaseModel):
    """One override row."""

    day: date
    kind: str
    note: str


class HolidayOut(BaseModel):
    """A public holiday from the ``holidays`` package."""

    day: date
    name: str


class CalendarOut(BaseModel):
    """A year's calendar: the package's public holidays and the admins' overrides (Asia/Almaty)."""

    year: int
    holidays: list[HolidayOut]
    overrides: list[OverrideOut]


class ExtendIn(Strict):
    """An extension: how many working days, why, and (no reply channel) how the citizen is told instead."""

    working_days: int = Field(ge=1, le=60)
    reason: str = Field(min_length=1, max_length=1000)
    notice_note: str | None = Field(default=None, max_length=500,
                                    description="Required when no message can be queued to the citizen "
                                    "(web, Open311, channel not configured): how they are told instead.")


class PauseIn(Strict):
    """Why the appeal waits for the citizen."""

    reason: str = Field(min_length=1, max_length=1000)


def _policy_out(row) -> dict:
    return PolicyOut(id=row.id, appeal_type=row.appeal_type, topic_code=row.topic_code, urgency=row.urgency,
                     mode=row.mode, amount=row.amount, updated_at=row.updated_at).model_dump(mode="json")


@bp.get("/admin/sla-policies")
@endpoint(responses={200: PolicyList}, tags=["sla"])
def list_sla_policies():
    """List the deadline policies."""
    return jsonify({"policies": [_policy_out(p) for p in sla.list_policies()]})


@bp.put("/admin/sla-policies")
@endpoint(body=PolicyIn, responses={200: PolicyOut}, tags=["sla"])
def save_sla_policy(body: PolicyIn):
    """Create or replace the policy of (type, topic, urgency); new appeals use it at once."""
    row = sla.save_policy(body.appeal_type, body.topic_code, body.urgency, body.mode, body.amount, viewer(),
                          utcnow())
    commit()
    sla.invalidate()
    return jsonify(_policy_out(row))


@bp.delete("/admin/sla-policies/<int:policy_id>")
@endpoint(responses={204: None}, tags=["sla"])
def delete_sla_policy(policy_id: int):
    """Remove a policy row (the type default, then the Art. 76 default, applies)."""
    sla.delete_policy(policy_id)
    commit()
    sla.invalidate()
    return "", 204


@bp.get("/admin/calendar")
@endpoint(query=CalendarQuery, responses={200: CalendarOut}, tags=["sla"])
def get_calendar(query: CalendarQuery):
    """A year's public holidays and the admins' overrides."""
    out = CalendarOut(year=query.year,
                      holidays=[HolidayOut(day=d, name=n) for d, n in calendar.public_holidays(query.year)],
                      overrides=[OverrideOut(day=o.day, kind=o.kind, note=o.note)
                                 for o in calendar.list_overrides(query.year)])
    return jsonify(out.model_dump(mode="json"))


@bp.put("/admin/calendar")
@endpoint(body=OverrideIn, responses={200: OverrideOut}, tags=["sla"])
def set_calendar_day(body: OverrideIn):
    """Set a day's override (a government day-off transfer or an extra day off)."""
    row = calendar.set_override(body.day, body.kind, body.note, viewer(), utcnow())
    commit()
    calendar.invalidate()
    return jsonify(OverrideOut(day=row.day, kind=row.kind, note=row.note).model_dump(mode="json"))


@bp.delete("/admin/calendar/<day>")
@endpoint(responses={204: None}, tags=["sla"])
def delete_calendar_day(day: str):
    """Remove a day's override (the weekday and public-holiday rule applies again)."""
    from server.services.errors import NotFound

    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise NotFound("calendar_day_not_found") from None
    calendar.delete_override(parsed)
    commit()
    calendar.invalidate()
    return "", 204


def _locked_appeal(appeal_id: int) -> Appeal:
    """The appeal, visible to the viewer, with its row locked on PostgreSQL (two clock changes never interleave)."""
    staff = viewer()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(Appeal.id).where(Appeal.id == appeal_id).with_for_update())
    return appeal_service.get_appeal(appeal_id, staff, fresh=True)


@bp.post("/appeals/<int:appeal_id>/extend")
@endpoint(body=ExtendIn, responses={200: AppealOut}, tags=["sla"])
def extend_appeal(appeal_id: int, body: ExtendIn):
    """Extend the deadline (Art. 76: reasoned, at most 2 months in total, the citizen told within 3 working days)."""
    staff = viewer()
    appeal = _locked_appeal(appeal_id)
    event = clock.extend(appeal, Actor.of(staff), body.working_days, body.reason, utcnow(),
                         notice_note=body.notice_note)
    commit([event])
    return jsonify(appeal_out(appeal, staff, with_history=True))


@bp.post("/appeals/<int:appeal_id>/pause")
@endpoint(body=PauseIn, responses={200: AppealOut}, tags=["sla"])
def pause_appeal(appeal_id: int, body: PauseIn):
    """Stop the SLA clock while the appeal waits for the citizen's information."""
    staff = viewer()
    appeal = _locked_appeal(appeal_id)
    event = clock.pause(appeal, Actor.of(staff), body.reason, utcnow())
    commit([event])
    return jsonify(appeal_out(appeal, staff, with_history=True))


@bp.post("/appeals/<int:appeal_id>/resume")
@endpoint(responses={200: AppealOut}, tags=["sla"])
def resume_appeal(appeal_id: int):
    """Restart the SLA clock: the due time moves by the paused time."""
    staff = viewer()
    appeal = _locked_appeal(appeal_id)
    event = clock.resume(appeal, Actor.of(staff), utcnow())
    commit([event])
    return jsonify(appeal_out(appeal, staff, with_history=True))
