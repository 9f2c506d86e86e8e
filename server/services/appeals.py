"""Reading appeals: who may see which, with which fields, and the list filters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, false, func, select, true

from server import geosql
from server.extensions import db
from server.models import APPEAL_TYPES, STATUSES, Appeal, AppealEvent, Sector, Staff
from server.schemas import TransitionIn
from server.services import dispatch, field, replay, routing
from server.services.errors import NotFound, Unprocessable
from server.services.lifecycle import Actor, transition

# Roles that see every appeal of the city.
CITY_WIDE = frozenset({"admin", "operator", "dispatcher", "inspector", "qc_analyst", "analyst",
                       "methodologist", "pr_manager"})
# Roles that may see a citizen's name and phone (field staff: only on their own assignments).
CONTACT_ROLES = frozenset({"operator", "dispatcher", "inspector", "qc_analyst", "unit_head"})


def visibility(viewer: Staff):
    """A SQL condition: the appeals ``viewer`` may know exist."""
    if viewer.role in CITY_WIDE:
        return true()
    if viewer.role in ("unit_head", "field_staff") and viewer.unit_id is not None:
        return Appeal.unit_id == viewer.unit_id
    return false()


def can_see_contact(appeal: Appeal, viewer: Staff) -> bool:
    """Whether ``viewer`` may read the applicant's name and phone on ``appeal``."""
    if viewer.role == "field_staff":
        return appeal.assignee_id == viewer.id
    if viewer.role == "unit_head":
        return appeal.unit_id == viewer.unit_id
    return viewer.role in CONTACT_ROLES


def get_appeal(appeal_id: int, viewer: Staff, *, fresh: bool = False) -> Appeal:
    """The appeal if ``viewer`` may see it; otherwise NotFound, so existence does not leak.

    ``fresh`` re-reads the row even if this session already holds it (after a row lock).
    """
    query = select(Appeal).where(Appeal.id == appeal_id, visibility(viewer))
    if fresh:
        query = query.execution_options(populate_existing=True)
    appeal = db.session.scalar(query)
    if appeal is None:
        raise NotFound("appeal_not_found")
    return appeal


def history(appeal: Appeal) -> list[AppealEvent]:
    """The appeal's events, oldest first."""
    return list(db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id)
                                   .order_by(AppealEvent.id)))


@dataclass
class Page:
    """One page of a list."""

    items: list[Appeal]
    total: int
    page: int
    per_page: int


def _csv(value: str | None, allowed=None, field: str = "") -> list[str]:
    if not value:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise Unprocessable("unknown_filter_value", field=field, value=bad[0])
    return items


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(p) for p in value.split(",")]
    except ValueError:
        raise Unprocessable("bad_bbox", field="bbox") from None
    if len(parts) != 4 or not all(abs(v) < 1e9 and v == v for v in parts):
        raise Unprocessable("bad_bbox", field="bbox")
    min_lon, min_lat, max_lon, max_lat = parts
    if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
        raise Unprocessable("bad_bbox", field="bbox")
    return min_lon, min_lat, max_lon, max_lat


def _since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable("bad_timestamp", field="updated_since") from None
    if moment.tzinfo is None:
        raise Unprocessable("bad_timestamp", field="updated_since")
    return moment


def list_query(viewer: Staff, *, status=None, sector=None, type=None, topic=None, bbox=None,
               updated_since=None, assignee=None, flagged=None) -> Select:
    """The filtered, visibility-restricted query behind ``GET /appeals``."""
    query = select(Appeal).where(visibility(viewer))
    if assignee == "me":  # the field app's "my work"
        query = query.where(Appeal.assignee_id == viewer.id)
    if statuses := _csv(status, STATUSES, "status"):
        query = query.where(Appeal.status.in_(statuses))
    if types := _csv(type, APPEAL_TYPES, "type"):
        query = query.where(Appeal.type.in_(types))
    if topics := _csv(topic, None, "topic"):
        query = query.where(Appeal.topic_code.in_(topics))
    if codes := _csv(sector, None, "sector"):
        wanted = select(Sector.id).where(Sector.code.in_(codes))
        if "none" in codes:
            query = query.where(Appeal.sector_id.in_(wanted) | Appeal.sector_id.is_(None))
        else:
            query = query.where(Appeal.sector_id.in_(wanted))
    if bbox:
        query = query.where(Appeal.location.is_not(None), geosql.in_bbox(Appeal.location, *_bbox(bbox)))
    if updated_since:
        query = query.where(Appeal.updated_at > _since(updated_since))
    if flagged is not None:
        # Field steps taken outside the geofence: the inspector's list.
        query = query.where(Appeal.flagged_at.is_not(None) if flagged else Appeal.flagged_at.is_(None))
    return query


def list_appeals(viewer: Staff, page: int = 1, per_page: int = 50, **filters) -> Page:
    """A page of the appeals ``viewer`` may see, newest change first."""
    query = list_query(viewer, **filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(
        query.order_by(Appeal.updated_at.desc(), Appeal.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return Page(items=list(items), total=total or 0, page=page, per_page=per_page)


def apply_action_once(appeal_id: int, viewer: Staff, body: TransitionIn, now: datetime, *,
                      client_uuid: str | None, serialise: Callable[[Appeal], dict]) -> replay.Outcome:
    """Take the step ``body`` asks for at most once per ``client_uuid``; 200 with ``serialise(appeal)``.

    A repeat of the UUID gets the stored answer (services.replay). Flushes; the caller commits.
    """
    request_hash = replay.fingerprint(op="transition", appeal_id=appeal_id, staff_id=viewer.id,
                                      body=body.model_dump(mode="json"))
    position = field.Position(**body.position.model_dump()) if body.position is not None else None

    def work() -> replay.Outcome:
        appeal = field.load_appeal(appeal_id, viewer)  # read after the row lock
        events = apply_action(appeal, viewer, body.action, now, reason=body.reason, answer=body.answer,
                              sector=body.sector, position=position, device_time=body.device_time)
        # The answer is built before the commit (it is stored with the change): re-read the appeal as
        # flushed, so relationships follow changed keys (a new sector, a new assignee).
        db.session.flush()
        db.session.expire(appeal)
        return replay.Outcome(status=200, body=serialise(appeal), events=events)

    return replay.perform_once(client_uuid, viewer, appeal_id, request_hash, work, now)


def apply_action(appeal: Appeal, viewer: Staff, action: str, now: datetime, *, reason=None, answer=None,
                 sector=None, position=None, device_time=None) -> list[AppealEvent]:
    """Take a lifecycle step on ``appeal`` as ``viewer`` (the generic transition endpoint).

    Field steps (accept ... resolve) go through ``services.field`` with the device's
    ``position`` (a field.Position) and ``device_time``.
    """
    if action in field.FIELD_ACTIONS:
        step = field.FieldStep(action=action, reason=reason, position=position, device_time=device_time)
        return field.take_field_step(appeal, viewer, step, now)
    actor = Actor.of(viewer)
    if viewer.role == "field_staff" and appeal.assignee_id != viewer.id:
        # Field staff act only on their own assignments, whatever the state machine would allow.
        raise Unprocessable("not_your_assignment", field="action")
    if action == "route_manually":
        if not sector:
            raise Unprocessable("sector_required", field="sector")
        return [routing.route_manually(appeal, sector, actor, now)]
    if action == "decline":
        return dispatch.decline(appeal, actor, now, reason)
    data = {}
    if action in ("answer", "answer_first_contact"):
        if not answer:
            raise Unprocessable("answer_required", field="answer")
        data["answer"] = answer
    event = transition(appeal, action, actor, now, reason=reason, data=data)
    if answer and action in ("answer", "answer_first_contact"):
        appeal.answer_text = answer
    return [event]
