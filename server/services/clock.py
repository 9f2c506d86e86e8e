"""The SLA clock rules (Administrative Procedural Code, Art. 76): extension, forwarding, pause.

* **Extension** - a reason, a role with the right (:data:`EXTEND_ROLES`: the unit head, who owns
  the work, and the centre's inspector, who controls it) and at most 2 months in total beyond
  the due time before the first extension (``original_due_at``; 422 beyond). The citizen must be
  told within 3 working days (``notify_by`` in the event): the notice is queued in the outbox in
  the same transaction, and the extension is refused (422 ``extension_notice_unavailable``)
  when no reply channel exists for the appeal and the request gives no ``notice_note`` saying
  how the citizen is told instead (a phone call, a letter). An extension is never silent.
  An extension is decided while the term runs: past the due time it is refused (422
  ``extension_after_due``). After an extension (or a resume) that leaves the appeal comfortably
  on time, the at-risk mark and the near-due warning are re-armed for the new due time.
* **Forwarding** outside the centre's competence must happen within 3 working days of
  registration. Later forwarding is still allowed (refusing would strand a misdirected appeal)
  but flagged: the event carries ``late: true`` and the appeal's ``flagged_at`` is set for the
  inspector. The citizen is told through the ``forwarded`` reply moment.
* **Pause** while the appeal waits for the citizen's information: the clock stops. On resume the
  due time moves forward by the paused time - working-day time for working-day deadlines
  (weekends and holidays count nothing), calendar time for hour deadlines.

None of these changes ``status``: they are clock events (``appeal.extended``, ``appeal.paused``,
``appeal.resumed``) next to the state machine of ``lifecycle``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, or_, select

from server.extensions import db
from server.models import OPEN_STATUSES, Appeal, AppealEvent, Staff
from server.services import push, replies, sla
from server.services.calendar import add_working_days, add_working_seconds, working_seconds_between
from server.services.errors import Forbidden, Unprocessable
from server.services.lifecycle import CLOCK_ACTIONS, SYSTEM, Actor, record_event

EXTEND_ROLES = CLOCK_ACTIONS["extend"]
PAUSE_ROLES = CLOCK_ACTIONS["pause"]
MAX_EXTENSION = relativedelta(months=2)
NOTICE_WORKING_DAYS = 3
FORWARD_WORKING_DAYS = 3


def _check(appeal: Appeal, actor: Actor, roles: frozenset[str], action: str) -> None:
    if actor.role not in roles:
        raise Forbidden("role_not_allowed", field="action", action=action, role=actor.role)
    if not appeal.is_open:
        raise Unprocessable("illegal_transition", field="action", action=action, status=appeal.status)
    if appeal.due_at is None:
        raise Unprocessable("appeal_has_no_deadline", field="action")


def extension_limit(appeal: Appeal) -> datetime:
    """The latest due time extensions may reach: 2 months after the due time before the first extension."""
    base = appeal.original_due_at or appeal.due_at
    return base + MAX_EXTENSION


def extend(appeal: Appeal, actor: Actor, working_days: int, reason: str | None, now: datetime,
           notice_note: str | None = None) -> AppealEvent:
    """Move the due time ``working_days`` working days later, with the citizen's notice queued.

    Raises Forbidden for a role without the right, Unprocessable without a reason, beyond the
    2-month total, or when no notice can be queued and no ``notice_note`` is given.
    """
    _check(appeal, actor, EXTEND_ROLES, "extend")
    reason = (reason or "").strip()
    if not reason:
        raise Unprocessable("reason_required", field="reason", action="extend")
    if working_days < 1:
        raise Unprocessable("extension_too_short", field="working_days")
    if now >= appeal.due_at or appeal.sla_breached_at is not None:
        # Art. 76 extends a term that is still running; a missed deadline stays missed.
        raise Unprocessable("extension_after_due", field="action")
    new_due = add_working_days(appeal.due_at, working_days)
    limit = extension_limit(appeal)
    if new_due > limit:
        raise Unprocessable("extension_beyond_limit", field="working_days", limit=limit.isoformat())
    where = replies.destination(appeal)
    note = (notice_note or "").strip()
    if where is None and not note:
        raise Unprocessable("extension_notice_unavailable", field="notice_note")
    previous = appeal.due_at
    appeal.original_due_at = appeal.original_due_at or previous
    appeal.due_at = new_due
    appeal.updated_at = now
    sla.rearm(appeal, now)
    data = {"reason": reason, "working_days": working_days, "previous_due_at": previous.isoformat(),
            "due_at": new_due.isoformat(), "limit": limit.isoformat(),
            "notify_by": add_working_days(now, NOTICE_WORKING_DAYS).isoformat(),
            "notice": where.channel if where is not None else "none"}
    if where is None:
        data["notice_note"] = note
    event = record_event(appeal, "appeal.extended", actor, now, from_status=appeal.status, to_status=appeal.status,
                         data=data)
    if where is not None and replies.queue_reply(appeal, event, "extended", now) == 0:
        # The destination exists but nothing was queued: refuse rather than extend silently.
        raise Unprocessable("extension_notice_unavailable", field="notice_note")
    return event


def forward_deadline(appeal: Appeal) -> datetime:
    """The last moment to forward ``appeal`` outside the centre's competence: 3 working days after registration."""
    return add_working_days(appeal.created_at, FORWARD_WORKING_DAYS)


def forward_flags(appeal: Appeal, now: datetime) -> dict:
    """What the forwarding event records: the deadline and whether it was missed (then the appeal is flagged)."""
    by = forward_deadline(appeal)
    late = now > by
    if late:
        appeal.flagged_at = appeal.flagged_at or now
    return {"forward_by": by.isoformat(), "late": late}


def pause(appeal: Appeal, actor: Actor, reason: str | None, now: datetime) -> AppealEvent:
    """Stop the clock while the appeal waits for the citizen's information (a reason is required)."""
    _check(appeal, actor, PAUSE_ROLES, "pause")
    reason = (reason or "").strip()
    if not reason:
        raise Unprocessable("reason_required", field="reason", action="pause")
    if appeal.paused_at is not None:
        raise Unprocessable("already_paused", field="action")
    appeal.paused_at = now
    appeal.updated_at = now
    return record_event(appeal, "appeal.paused", actor, now, from_status=appeal.status, to_status=appeal.status,
                        data={"reason": reason})


def paused_shift(appeal: Appeal, now: datetime) -> timedelta | float:
    """How far the due time moves for the pause so far: working seconds (float) or a calendar timedelta."""
    rule = sla.rule_for(appeal.type, appeal.topic_code, appeal.urgency)
    if rule.mode == "hours":
        return now - appeal.paused_at
    return working_seconds_between(appeal.paused_at, now)


def resume(appeal: Appeal, actor: Actor, now: datetime) -> AppealEvent:
    """Restart the clock: the due time (and the extension base) move by the paused time."""
    if actor.role not in CLOCK_ACTIONS["resume"]:
        raise Forbidden("role_not_allowed", field="action", action="resume", role=actor.role)
    if appeal.paused_at is None:
        raise Unprocessable("not_paused", field="action")
    shift = paused_shift(appeal, now)
    previous = appeal.due_at

    def move(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return moment + shift if isinstance(shift, timedelta) else add_working_seconds(moment, shift)

    appeal.due_at = move(appeal.due_at)
    appeal.original_due_at = move(appeal.original_due_at)
    paused_since = appeal.paused_at
    appeal.paused_at = None
    appeal.updated_at = now
    sla.rearm(appeal, now)
    seconds = shift.total_seconds() if isinstance(shift, timedelta) else shift
    return record_event(appeal, "appeal.resumed", actor, now, from_status=appeal.status, to_status=appeal.status,
                        data={"paused_at": paused_since.isoformat(), "paused_seconds": int(seconds),
                              "previous_due_at": previous.isoformat() if previous else None,
                              "due_at": appeal.due_at.isoformat() if appeal.due_at else None})


# --- the SLA tick (run by the worker under its lock) ---------------------------------------------

CENTRE_ESCALATION_ROLES = ("dispatcher", "inspector")


def _escalation_recipients(appeal: Appeal) -> list[int]:
    """The unit's heads and the centre's dispatchers and inspectors (active), for a breach."""
    query = select(Staff.id).where(Staff.active.is_(True), or_(
        and_(Staff.role == "unit_head", Staff.unit_id == appeal.unit_id) if appeal.unit_id is not None
        else Staff.id.is_(None),
        Staff.role.in_(CENTRE_ESCALATION_ROLES)))
    return list(db.session.scalars(query.order_by(Staff.id)))


def sla_tick(now: datetime, limit: int = 1000) -> list[AppealEvent]:
    """Mark open, running appeals at risk and breached, once each; returns the events to publish.

    At risk: ``appeal.sla_at_risk`` and the assignee's ``sla.warning`` push (the same push the
    near-due warning sends, so ``sla_warned_at`` is set and it is not sent twice). Breached:
    ``appeal.sla_breached``, a ``sla.breached`` push to the assignee, and the escalation - the
    ``notify`` list of the event and ``sla.breached`` pushes (outbox rows) to the unit's heads and
    the centre's dispatchers and inspectors. Paused appeals are skipped (their clock is stopped).
    """
    share = sla.at_risk_share()
    rows = db.session.execute(
        select(Appeal.id, sla.cycle_start_column(), Appeal.due_at, Appeal.sla_at_risk_at)
        .where(Appeal.status.in_(OPEN_STATUSES), Appeal.due_at.is_not(None), Appeal.paused_at.is_(None),
               Appeal.sla_breached_at.is_(None))
        .order_by(Appeal.due_at, Appeal.id)).all()
    todo = []
    for appeal_id, start, due, at_risk_at in rows:
        state = sla.state_at(start, due, now, share)  # measured from the last reopening, if any
        if state == "breached" or (state == "at_risk" and at_risk_at is None):
            todo.append((appeal_id, state))
        if len(todo) >= limit:
            break  # the rest next pass
    events = []
    for appeal_id, state in todo:
        appeal = db.session.get(Appeal, appeal_id)
        appeal.sla_state = state
        data = {"due_at": appeal.due_at.isoformat(), "assignee_id": appeal.assignee_id}
        if state == "at_risk":
            appeal.sla_at_risk_at = now
            events.append(record_event(appeal, "appeal.sla_at_risk", SYSTEM, now, from_status=appeal.status,
                                       to_status=appeal.status, data={**data, "share": share}))
            if appeal.assignee_id is not None and appeal.sla_warned_at is None:
                appeal.sla_warned_at = now
                push.queue_push(appeal.assignee_id, appeal, "sla.warning",
                                f"sla{appeal.id}:{int(appeal.due_at.timestamp())}", now)
            continue
        appeal.sla_breached_at = now
        notify = _escalation_recipients(appeal)
        events.append(record_event(appeal, "appeal.sla_breached", SYSTEM, now, from_status=appeal.status,
                                   to_status=appeal.status, data={**data, "notify": notify}))
        for staff_id in ([appeal.assignee_id] if appeal.assignee_id else []) + notify:
            push.queue_push(staff_id, appeal, "sla.breached", f"slabreach{appeal.id}:st{staff_id}", now)
    if events:
        db.session.flush()
    return events
