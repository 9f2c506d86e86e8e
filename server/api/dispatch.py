"""Live dispatch: catch-up events, accept/decline/reassign, duty, positions, shifts, staff."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from server.api import bp
from server.api.common import commit, viewer
from server.api.outputs import AppealOut, appeal_out, locale
from server.api.spec import endpoint
from server.extensions import db
from server.models import Appeal, AppealEvent, Shift, Staff, Unit
from server.models.types import utcnow
from server.realtime.publish import event_payload
from server.schemas import DutyIn, EventsQuery, PositionIn, ReassignIn, StaffPatch
from server.services import appeals as appeal_service
from server.services import audit, dispatch, positions
from server.services.errors import Unprocessable
from server.services.lifecycle import Actor


@bp.get("/events")
@endpoint(query=EventsQuery, tags=["live"])
def list_events(query: EventsQuery):
    """Events after ``after`` that you may see, oldest first (fill the gap after a reconnect)."""
    staff = viewer()
    rows = db.session.execute(
        select(AppealEvent, Appeal).join(Appeal, Appeal.id == AppealEvent.appeal_id)
        .where(AppealEvent.id > query.after, appeal_service.visibility(staff))
        .order_by(AppealEvent.id).limit(query.limit)
    ).all()
    items = [event_payload(ev, appeal) for ev, appeal in rows]
    return jsonify({"items": items, "last_id": items[-1]["id"] if items else query.after,
                    "more": len(items) == query.limit})


@bp.post("/appeals/<int:appeal_id>/reassign")
@endpoint(body=ReassignIn, responses={200: AppealOut}, tags=["live"])
def reassign_appeal(appeal_id: int, body: ReassignIn):
    """Move an appeal to another field staff member or to another unit's queue."""
    staff = viewer()
    appeal = appeal_service.get_appeal(appeal_id, staff)
    events = dispatch.reassign(appeal, Actor.of(staff), utcnow(), staff_id=body.staff_id, unit_code=body.unit,
                               reason=body.reason)
    commit(events)
    return jsonify(appeal_out(appeal, staff, with_history=True))


@bp.post("/me/duty")
@endpoint(body=DutyIn, tags=["live"])
def set_my_duty(body: DutyIn):
    """Go on or off duty."""
    staff = viewer()
    dispatch.set_duty(staff, body.on_duty, utcnow())
    commit()
    return jsonify({"on_duty": staff.on_duty})


@bp.post("/me/position")
@endpoint(body=PositionIn, responses={201: None, 429: None}, tags=["live"])
def report_my_position(body: PositionIn):
    """Report this device's position (at most one every few seconds)."""
    staff = viewer()
    pos = positions.report_position(staff.id, body, utcnow())
    commit()
    return jsonify({"recorded_at": pos.recorded_at.isoformat()}), 201


@bp.get("/staff/positions")
@endpoint(tags=["live"])
def staff_positions():
    """Last known positions of unit staff (a unit head sees their own unit)."""
    staff = viewer()
    unit = staff.unit_id if staff.role == "unit_head" else None
    return jsonify(positions.latest_positions(unit, utcnow()))


@bp.get("/staff")
@endpoint(tags=["live"])
def list_staff():
    """Unit staff with duty state and open load (for reassigning)."""
    staff = viewer()
    query = select(Staff).where(Staff.role.in_(("field_staff", "unit_head")), Staff.active.is_(True))
    if staff.role == "unit_head":
        query = query.where(Staff.unit_id == staff.unit_id)
    people = list(db.session.scalars(query.order_by(Staff.unit_id, Staff.username)))
    load = dispatch.open_load([p.id for p in people])
    return jsonify([{"id": p.id, "username": p.username, "name": p.full_name, "role": p.role,
                     "unit": p.unit.code if p.unit else None, "shift": p.shift_code, "on_duty": p.on_duty,
                     "open_assignments": load.get(p.id, 0)} for p in people])


@bp.get("/shifts")
@endpoint(tags=["live"])
def list_shifts():
    """The four shifts and who belongs to each, with who is on duty now (a unit head: their own unit's people)."""
    lang = locale()
    staff = viewer()
    query = select(Staff).where(Staff.active.is_(True))
    if staff.role == "unit_head":  # as in list_staff and staff_positions
        query = query.where(Staff.unit_id == staff.unit_id)
    people = list(db.session.scalars(query.order_by(Staff.username)))
    out = []
    for shift in db.session.scalars(select(Shift).order_by(Shift.code)):
        members = [p for p in people if p.shift_code == shift.code]
        out.append({"code": shift.code, "name": shift.name(lang), "starts_at": shift.starts_at, "hours": shift.hours,
                    "staff": [{"id": p.id, "username": p.username, "role": p.role, "on_duty": p.on_duty}
                              for p in members]})
    return jsonify(out)


@bp.patch("/staff/<int:staff_id>")
@endpoint(body=StaffPatch, tags=["admin"])
def update_staff(staff_id: int, body: StaffPatch):
    """Move a person to another unit, disable them, set their shift or language (admins)."""
    target = dispatch.get_staff(staff_id)
    before = audit.staff_snapshot(target)
    if body.unit is not None:
        unit = db.session.scalar(select(Unit).where(Unit.code == body.unit))
        if unit is None:
            raise Unprocessable("unknown_unit", field="unit", unit=body.unit)
        target.unit_id = unit.id
    if body.active is not None:
        target.active = body.active
        if not body.active:
            target.auth_epoch += 1  # ends every session and token at once
    if body.shift is not None:
        if db.session.get(Shift, body.shift) is None:
            raise Unprocessable("unknown_shift", field="shift")
        target.shift_code = body.shift
    if body.language is not None:
        target.language = body.language
    db.session.flush()
    audit.record_staff_change(target, before, viewer(), utcnow())  # permission changes are audited
    commit()
    return jsonify({"id": target.id, "unit": target.unit.code if target.unit else None, "active": target.active,
                    "shift": target.shift_code, "language": target.language})
