"""Field steps: what the assignee does on the ground, with where and when the device says it was.

accept / decline (reason) -> depart (en route) -> arrive (on site) -> resolve, or
cannot_resolve (reason) from any working status. Each step's event records the
device time, position and accuracy. ``arrive`` and ``resolve`` check the geofence:
inside means the geodesic distance to the appeal point is at most
``max(JAUAP_GEOFENCE_RADIUS_M, accuracy_m)``; a fix less accurate than
``JAUAP_GEOFENCE_MAX_ACCURACY_M`` counts as no position. Outside (or without a
position) the step needs a reason and is flagged for the inspector
(``Appeal.flagged_at``, ``flagged: true`` in the event). ``resolve`` needs an
"after" photo taken in the current visit.

For field staff, a step that no longer fits the appeal (reassigned, moved, closed,
or no longer legal from its status: typically an offline outbox replaying old
work) is a 409 ``appeal_changed`` saying what the appeal is now, so the app can
drop the queued step and refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import exists, func, select

from geo import within_geofence
from server import geosql
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, Staff
from server.services import appeals as appeal_service
from server.services import dispatch
from server.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.services.lifecycle import TRANSITIONS, Actor, transition

FIELD_ACTIONS = frozenset({"accept", "decline", "depart", "arrive", "resolve", "cannot_resolve"})
GEOFENCED = frozenset({"arrive", "resolve"})


@dataclass(frozen=True)
class Position:
    """A device fix: WGS84 degrees and the accuracy radius in metres."""

    lat: float
    lon: float
    accuracy_m: float | None = None  # unknown: judged by the minimum radius alone


@dataclass(frozen=True)
class FieldStep:
    """One field step as the device sent it."""

    action: str
    reason: str | None = None
    position: Position | None = None
    device_time: datetime | None = None


def load_appeal(appeal_id: int, staff: Staff) -> Appeal:
    """The appeal, freshly read (after any row lock), if ``staff`` may see it.

    A field staff member who was once assigned to an appeal that has since left
    their unit gets 409 ``appeal_changed`` (their queued work is void) instead of
    the 404 everyone else gets.
    """
    try:
        return appeal_service.get_appeal(appeal_id, staff, fresh=True)
    except NotFound:
        if staff.role == "field_staff":
            moved = db.session.get(Appeal, appeal_id)
            if moved is not None and _was_assigned(moved, staff):
                raise _changed(moved, staff) from None
        raise


def _was_assigned(appeal: Appeal, staff: Staff) -> bool:
    assigned = db.session.scalars(select(AppealEvent.data).where(
        AppealEvent.appeal_id == appeal.id, AppealEvent.kind.in_(("appeal.assigned", "appeal.reassigned"))))
    return any((data or {}).get("assignee_id") == staff.id for data in assigned)


def _changed(appeal: Appeal, staff: Staff) -> Conflict:
    yours = appeal.assignee_id == staff.id
    return Conflict("appeal_changed", field="action", status=appeal.status,
                    detail={"status": appeal.status, "assigned_to_you": yours})


def ensure_still_yours(appeal: Appeal, staff: Staff, statuses) -> None:
    """409 ``appeal_changed`` unless ``staff`` is the assignee and the appeal is in one of ``statuses``."""
    if appeal.assignee_id != staff.id or appeal.status not in statuses:
        raise _changed(appeal, staff)


def check_geofence(appeal: Appeal, position: Position | None) -> dict | None:
    """The geofence verdict for a position against the appeal point; None when the appeal has no point."""
    point = geosql.lonlat(appeal.location)
    if point is None:
        return None  # an address-only appeal: nothing to measure against
    min_radius = float(current_app.config["JAUAP_GEOFENCE_RADIUS_M"])
    max_accuracy = float(current_app.config["JAUAP_GEOFENCE_MAX_ACCURACY_M"])
    if position is None:
        return {"distance_m": None, "radius_m": min_radius, "inside": False, "why": "no_position"}
    inside, distance = within_geofence(position.lon, position.lat, point[0], point[1], position.accuracy_m,
                                       min_radius_m=min_radius)
    radius = max(min_radius, position.accuracy_m or 0.0)
    verdict = {"distance_m": round(distance, 1), "radius_m": round(radius, 1), "inside": inside}
    if position.accuracy_m is not None and position.accuracy_m > max_accuracy:
        # A fix this vague says nothing about where the phone is: it counts as none.
        verdict.update(inside=False, radius_m=min_radius, why="poor_accuracy")
    elif not inside:
        verdict["why"] = "outside"
    return verdict


def has_after_photo(appeal: Appeal) -> bool:
    """Whether an "after" photo was added since the appeal last went on site (this visit)."""
    arrived = db.session.scalar(select(func.max(AppealEvent.created_at)).where(
        AppealEvent.appeal_id == appeal.id, AppealEvent.kind == "appeal.on_site"))
    query = select(Attachment.id).where(Attachment.appeal_id == appeal.id, Attachment.kind == "after")
    if arrived is not None:
        query = query.where(Attachment.created_at >= arrived)
    return bool(db.session.scalar(select(exists(query))))


def _device_data(step: FieldStep) -> dict:
    pos = step.position
    return {
        "device_time": step.device_time.isoformat() if step.device_time else None,
        "position": {"lat": pos.lat, "lon": pos.lon, "accuracy_m": pos.accuracy_m} if pos else None,
    }


def take_field_step(appeal: Appeal, staff: Staff, step: FieldStep, now: datetime) -> list[AppealEvent]:
    """Take one field step on ``appeal`` as ``staff``; flushes, the caller commits."""
    spec = TRANSITIONS[step.action]
    if staff.role not in spec.roles:
        raise Forbidden("role_not_allowed", field="action", action=step.action, role=staff.role)
    ensure_still_yours(appeal, staff, spec.sources)
    actor = Actor.of(staff)
    data = _device_data(step)
    reason = (step.reason or "").strip() or None
    if step.action in GEOFENCED:
        fence = check_geofence(appeal, step.position)
        if fence is not None:
            data["geofence"] = fence
            if not fence["inside"]:
                if not reason:
                    raise Unprocessable("geofence_reason_required", field="reason", distance_m=fence["distance_m"],
                                        detail={"distance_m": fence["distance_m"], "radius_m": fence["radius_m"]})
                data["flagged"] = True
    if step.action == "resolve" and not has_after_photo(appeal):
        raise Unprocessable("after_photo_required", field="action")
    if step.action == "decline":
        return dispatch.decline(appeal, actor, now, reason, data=data)
    if step.action == "cannot_resolve":
        data["assignee_id"] = appeal.assignee_id
    event = transition(appeal, step.action, actor, now, reason=reason, data=data)
    if data.get("flagged") and appeal.flagged_at is None:
        appeal.flagged_at = now
    if step.action == "cannot_resolve":
        # Back to the unit's queue for the unit head or dispatcher to decide (another person, another
        # unit, or a contractor): the rule would only hand it to someone just as unable.
        appeal.assignee_id = None
        appeal.assigned_at = None
    return [event]
