"""The assignment engine: who in a unit gets a routed appeal, accept/decline, reassign, escalate.

Rule (documented in the README): among the unit's active field staff who are on
duty, the one with the fewest open assignments; ties go to the one whose last
known position is nearest the appeal (people with no position come after those
with one); remaining ties to the lowest staff id. Someone who declined this
appeal is not picked again for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from geo import geodesic_distance_m
from server import geosql
from server.extensions import db
from server.models import Appeal, AppealEvent, Staff, StaffPosition, Unit
from server.services.errors import NotFound, Unprocessable
from server.services.lifecycle import SYSTEM, Actor, record_event, transition

WORKING = ("assigned", "accepted", "en_route", "on_site")


def open_load(staff_ids: list[int]) -> dict[int, int]:
    """Open assignments per staff member."""
    if not staff_ids:
        return {}
    rows = db.session.execute(
        select(Appeal.assignee_id, func.count(Appeal.id))
        .where(Appeal.assignee_id.in_(staff_ids), Appeal.status.in_(WORKING))
        .group_by(Appeal.assignee_id)
    )
    return {sid: n for sid, n in rows}


def _decliners(appeal: Appeal) -> set[int]:
    return set(db.session.scalars(select(AppealEvent.actor_id).where(
        AppealEvent.appeal_id == appeal.id, AppealEvent.kind == "appeal.declined")))


def pick_assignee(appeal: Appeal) -> tuple[Staff, dict] | None:
    """The field staff member the rule chooses, with the figures that decided it, or None."""
    if appeal.unit_id is None:
        return None
    candidates = list(db.session.scalars(select(Staff).where(
        Staff.unit_id == appeal.unit_id, Staff.role == "field_staff", Staff.active.is_(True),
        Staff.on_duty.is_(True))))
    excluded = _decliners(appeal)
    candidates = [c for c in candidates if c.id not in excluded]
    if not candidates:
        return None
    load = open_load([c.id for c in candidates])
    point = geosql.lonlat(appeal.location)
    positions = {p.staff_id: p for p in db.session.scalars(
        select(StaffPosition).where(StaffPosition.staff_id.in_([c.id for c in candidates])))}

    def distance(staff: Staff) -> float:
        pos = positions.get(staff.id)
        if pos is None or point is None:
            return float("inf")
        return geodesic_distance_m(point[0], point[1], pos.lon, pos.lat)

    best = min(candidates, key=lambda s: (load.get(s.id, 0), distance(s), s.id))
    dist = distance(best)
    return best, {"open_assignments": load.get(best.id, 0),
                  "distance_m": None if dist == float("inf") else round(dist, 1),
                  "rule": "fewest_open_then_nearest"}


def auto_assign(appeal: Appeal, now: datetime) -> AppealEvent | None:
    """Assign a routed (or reopened) appeal by the rule; None when nobody in the unit is on duty."""
    if appeal.status not in ("routed", "reopened"):
        return None
    choice = pick_assignee(appeal)
    if choice is None:
        return None
    staff, why = choice
    event = transition(appeal, "assign", SYSTEM, now, data={"assignee_id": staff.id, **why})
    appeal.assignee_id = staff.id
    appeal.assigned_at = now
    appeal.escalated_at = None
    return event


def _back_to_queue(appeal: Appeal, event: AppealEvent, now: datetime) -> list[AppealEvent]:
    """The appeal is unassigned (declined or moved): clear the assignee and let the rule pick again."""
    appeal.assignee_id = None
    appeal.assigned_at = None
    follow = auto_assign(appeal, now)
    return [event] if follow is None else [event, follow]


def _require_assignee(appeal: Appeal, actor: Actor) -> None:
    if actor.role == "field_staff" and appeal.assignee_id != actor.staff_id:
        raise Unprocessable("not_your_assignment", field="appeal")


def accept(appeal: Appeal, actor: Actor, now: datetime) -> AppealEvent:
    """The assignee accepts the work."""
    _require_assignee(appeal, actor)
    return transition(appeal, "accept", actor, now)


def decline(appeal: Appeal, actor: Actor, now: datetime, reason: str | None,
            data: dict | None = None) -> list[AppealEvent]:
    """The assignee declines with a reason; the appeal goes back to the unit and is re-assigned if possible.

    ``data`` adds to the event (the field app's device time and position).
    """
    _require_assignee(appeal, actor)
    event = transition(appeal, "decline", actor, now, reason=reason,
                       data={**(data or {}), "assignee_id": appeal.assignee_id})
    return _back_to_queue(appeal, event, now)


def reassign(appeal: Appeal, actor: Actor, now: datetime, *, staff_id: int | None = None,
             unit_code: str | None = None, reason: str | None = None) -> list[AppealEvent]:
    """A dispatcher (or the unit head, inside the unit) moves the work to a person or to another unit."""
    if staff_id is not None:
        target = db.session.get(Staff, staff_id)
        if target is None or target.role != "field_staff" or not target.active:
            raise Unprocessable("unknown_assignee", field="staff_id")
        if actor.role == "unit_head" and target.unit_id != appeal.unit_id:
            raise Unprocessable("other_unit", field="staff_id")
        action = "assign" if appeal.status in ("routed", "reopened") else "reassign"
        data = {"assignee_id": target.id, "from_assignee_id": appeal.assignee_id}
        if target.unit_id != appeal.unit_id:
            data.update(from_unit_id=appeal.unit_id, unit_id=target.unit_id)
        event = transition(appeal, action, actor, now, reason=reason, data=data)
        appeal.unit_id = target.unit_id
        appeal.assignee_id = target.id
        appeal.assigned_at = now
        appeal.escalated_at = None
        return [event]
    if actor.role != "dispatcher":
        raise Unprocessable("only_dispatcher_moves_units", field="unit")
    unit = db.session.scalar(select(Unit).where(Unit.code == unit_code))
    if unit is None:
        raise Unprocessable("unknown_unit", field="unit", unit=unit_code)
    data = {"from_unit_id": appeal.unit_id, "unit_id": unit.id, "from_assignee_id": appeal.assignee_id}
    event = transition(appeal, "move_unit", actor, now, reason=reason, data=data)
    appeal.unit_id = unit.id
    return _back_to_queue(appeal, event, now)


def escalate_unaccepted(now: datetime) -> list[AppealEvent]:
    """Assignments not accepted within the timeout: escalate once to the unit head and the centre."""
    timeout = timedelta(minutes=current_app.config["JAUAP_ACCEPT_TIMEOUT_MIN"])
    overdue = db.session.scalars(select(Appeal).where(
        Appeal.status == "assigned", Appeal.assigned_at.is_not(None), Appeal.assigned_at <= now - timeout,
        Appeal.escalated_at.is_(None)))
    events = []
    for appeal in overdue:
        heads = list(db.session.scalars(select(Staff.id).where(
            Staff.unit_id == appeal.unit_id, Staff.role == "unit_head", Staff.active.is_(True))))
        appeal.escalated_at = now
        events.append(record_event(appeal, "appeal.escalated", SYSTEM, now, from_status=appeal.status,
                                   to_status=appeal.status,
                                   data={"reason_code": "not_accepted", "assignee_id": appeal.assignee_id,
                                         "minutes": int(timeout.total_seconds() // 60), "notify": heads}))
    return events


def set_duty(staff: Staff, on_duty: bool, now: datetime) -> Staff:
    """Go on or off duty (only people on duty get work automatically)."""
    staff.on_duty = on_duty
    staff.duty_changed_at = now
    return staff


def get_staff(staff_id: int) -> Staff:
    """A staff member by id, or NotFound."""
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        raise NotFound("staff_not_found")
    return staff
