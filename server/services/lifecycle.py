"""The appeal lifecycle: one explicit state machine, enforced here and only here.

``TRANSITIONS`` names every action, the statuses it may start from, the status
it leads to, and the roles allowed to take it (``system`` is Jauap itself,
``citizen`` the applicant through their tracking link or channel). Every
transition appends an :class:`AppealEvent`; nothing else changes ``status``.

    registered -> routed | unrouted -> assigned -> accepted -> en_route -> on_site
      -> resolved -> verified (or returned to assigned) -> answered -> closed
    answered | closed -> reopened (citizen dispute) -> assigned ...
    registered/routed/unrouted/assigned -> rejected | duplicate | forwarded
    consultation and gratitude: registered/routed/unrouted -> answered -> closed at first contact

The SLA clock has actions of its own that never change ``status`` (``server.services.clock``):
``extend`` (event ``appeal.extended``), ``pause`` / ``resume`` (``appeal.paused`` /
``appeal.resumed``; ``Appeal.paused_at`` is the paused flag) - listed in :data:`CLOCK_ACTIONS`.
Reaching a done status stores the SLA outcome (``met`` or ``breached``); reopening starts a fresh
term from the reopening (``sla.reopen_cycle``; the event keeps the previous due time and outcome);
forwarding records whether it kept the 3-working-day limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.extensions import db
from server.models import Appeal, AppealEvent, Staff
from server.models.appeal import DONE_STATUSES
from server.services import audit, sla
from server.services.errors import Forbidden, Unprocessable

CENTRE_DESK = frozenset({"operator", "dispatcher"})
CHECKERS = frozenset({"inspector", "qc_analyst"})
DISPATCHERS = frozenset({"system", "dispatcher", "unit_head"})


@dataclass(frozen=True)
class Transition:
    """One allowed move of the state machine."""

    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    kind: str
    needs_reason: bool = False
    types: frozenset[str] | None = None  # None: any appeal type


def _t(action, sources, target, roles, kind=None, needs_reason=False, types=None) -> Transition:
    return Transition(
        action=action,
        sources=frozenset(sources),
        target=target,
        roles=frozenset(roles),
        kind=kind or f"appeal.{action}",
        needs_reason=needs_reason,
        types=frozenset(types) if types else None,
    )


_BEFORE_WORK = ("registered", "routed", "unrouted", "assigned", "reopened")

TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t("route", ["registered"], "routed", ["system"], kind="appeal.routed"),
        _t("unroute", ["registered"], "unrouted", ["system"], kind="appeal.unrouted"),
        _t("route_manually", ["unrouted", "routed"], "routed", CENTRE_DESK | {"system"}, kind="appeal.routed"),
        _t("assign", ["routed", "reopened"], "assigned", DISPATCHERS, kind="appeal.assigned"),
        _t("reassign", ["assigned", "accepted"], "assigned", DISPATCHERS, kind="appeal.reassigned"),
        _t("move_unit", ["routed", "reopened", "assigned", "accepted"], "routed", {"dispatcher"}, kind="appeal.moved"),
        _t("decline", ["assigned"], "routed", {"field_staff"}, kind="appeal.declined", needs_reason=True),
        _t("accept", ["assigned"], "accepted", {"field_staff"}, kind="appeal.accepted"),
        _t("depart", ["accepted"], "en_route", {"field_staff"}, kind="appeal.en_route"),
        _t("arrive", ["accepted", "en_route"], "on_site", {"field_staff"}, kind="appeal.on_site"),
        _t("resolve", ["on_site"], "resolved", {"field_staff"}, kind="appeal.resolved"),
        _t("cannot_resolve", ["accepted", "en_route", "on_site"], "routed", {"field_staff"},
           kind="appeal.cannot_resolve", needs_reason=True),
        _t("verify", ["resolved"], "verified", CHECKERS, kind="appeal.verified"),
        _t("return_work", ["resolved"], "assigned", CHECKERS, kind="appeal.returned", needs_reason=True),
        _t("answer", ["verified"], "answered", CHECKERS | {"operator", "system"}, kind="appeal.answered"),
        _t("answer_first_contact", ["registered", "routed", "unrouted"], "answered", {"operator"},
           kind="appeal.answered", types={"consultation", "gratitude"}),
        _t("close", ["answered"], "closed", CHECKERS | {"operator", "system", "citizen"}, kind="appeal.closed"),
        _t("reopen", ["answered", "closed"], "reopened", {"citizen", "inspector", "qc_analyst"},
           kind="appeal.reopened", needs_reason=True),
        _t("reject", _BEFORE_WORK, "rejected", CENTRE_DESK | {"inspector"}, kind="appeal.rejected", needs_reason=True),
        _t("mark_duplicate", _BEFORE_WORK, "duplicate", CENTRE_DESK, kind="appeal.duplicate", needs_reason=True),
        _t("forward", (*_BEFORE_WORK, "accepted"), "forwarded", CENTRE_DESK | {"inspector"},
           kind="appeal.forwarded", needs_reason=True),
    )
}


# Clock actions (no status change) -> the roles that may take them; enforced in server.services.clock.
CLOCK_ACTIONS: dict[str, frozenset[str]] = {
    "extend": frozenset({"unit_head", "inspector"}),
    "pause": frozenset({"operator", "dispatcher", "inspector", "unit_head"}),
    "resume": frozenset({"operator", "dispatcher", "inspector", "unit_head", "system"}),
}


@dataclass(frozen=True)
class Actor:
    """Who takes a step: a staff member, the citizen, or the system."""

    kind: str  # staff | citizen | system
    role: str
    staff_id: int | None = None

    @classmethod
    def of(cls, staff: Staff) -> Actor:
        """The actor for a logged-in staff member."""
        return cls(kind="staff", role=staff.role, staff_id=staff.id)


SYSTEM = Actor(kind="system", role="system")
CITIZEN = Actor(kind="citizen", role="citizen")


def allowed_actions(appeal: Appeal, actor: Actor) -> list[str]:
    """The actions ``actor`` may take on ``appeal`` now (for UIs to show only valid buttons)."""
    return [
        t.action
        for t in TRANSITIONS.values()
        if appeal.status in t.sources and actor.role in t.roles and (t.types is None or appeal.type in t.types)
    ]


def record_event(
    appeal: Appeal,
    kind: str,
    actor: Actor,
    now: datetime,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    data: dict | None = None,
) -> AppealEvent:
    """Append one event to the appeal's history (the session is flushed, not committed)."""
    ev = AppealEvent(
        appeal_id=appeal.id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor_kind=actor.kind,
        actor_id=actor.staff_id,
        created_at=now,
        data=data or {},
    )
    db.session.add(ev)
    db.session.flush()
    if to_status is not None and to_status != from_status:
        # Every status change is audited in the same transaction as its event.
        audit.record("appeal.status", actor, now, object_type="appeal", object_id=appeal.id,
                     data={"event_id": ev.id, "kind": kind, "from": from_status, "to": to_status})
    return ev


def transition(
    appeal: Appeal,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    reason: str | None = None,
    data: dict | None = None,
) -> AppealEvent:
    """Move ``appeal`` by ``action`` if the machine allows it; append and return the event.

    Raises Unprocessable for an unknown or illegal move or a missing reason, and
    Forbidden when the actor's role may not take the action.
    """
    spec = TRANSITIONS.get(action)
    if spec is None:
        raise Unprocessable("unknown_action", field="action", action=action)
    if actor.role not in spec.roles:
        raise Forbidden("role_not_allowed", field="action", action=action, role=actor.role)
    if appeal.status not in spec.sources:
        raise Unprocessable("illegal_transition", field="action", action=action, status=appeal.status)
    if spec.types is not None and appeal.type not in spec.types:
        raise Unprocessable("action_not_for_type", field="action", action=action, type=appeal.type)
    reason = (reason or "").strip() or None
    if spec.needs_reason and not reason:
        raise Unprocessable("reason_required", field="reason", action=action)
    payload = dict(data or {})
    if reason:
        payload["reason"] = reason
    if spec.target == "forwarded":
        from server.services.clock import forward_flags  # clock builds on this module

        payload.update(forward_flags(appeal, now))  # Art. 76: within 3 working days, else flagged
    previous = appeal.status
    appeal.status = spec.target
    appeal.updated_at = now
    if spec.target == "answered":
        appeal.answered_at = now
    elif spec.target == "closed":
        appeal.closed_at = now
    elif spec.target == "reopened":
        appeal.closed_at = None
        # A fresh term from the reopening; the event keeps the previous cycle's due time and outcome.
        payload.update(sla.reopen_cycle(appeal, now))
    if spec.target in DONE_STATUSES and previous not in DONE_STATUSES:
        sla.mark_done(appeal, now)  # met or breached, stored at close
    return record_event(appeal, spec.kind, actor, now, from_status=previous, to_status=spec.target, data=payload)
