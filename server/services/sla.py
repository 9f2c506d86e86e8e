"""SLA deadlines from the admin-editable policy table, and the SLA states.

Policies (``SlaPolicy``) are per appeal type, optionally narrowed to a topic and/or
an urgency; the most specific row wins: (type, topic, urgency), (type, topic, any),
(type, any, urgency), (type, any, any). A deadline is in working days (ending
18:00 local on the last day, see ``calendar``), in calendar hours, or none.
The migration seeds the Administrative Procedural Code, Art. 76 defaults
(:data:`DEFAULTS`): consultation, complaint and proposal 15 working days;
incidents emergency 4 h, urgent 24 h, normal 3 working days; gratitude none.
The same defaults apply when the table has no row for a type.

The table is cached per app (:data:`CACHE_TTL_S`) and the cache is dropped on every edit.

SLA states: ``on_time``, ``at_risk`` (the share JAUAP_AT_RISK_SHARE of the time
from the start of the term to the due time used), ``breached`` (past due), and ``met``
(answered or otherwise done by the due time; stored at close).

A reopened appeal (citizen dispute, inspector or QC) gets a fresh term under the same policy,
counted from the reopening (:func:`reopen_cycle`); the previous cycle's due time and outcome stay
in the ``appeal.reopened`` event, and the term's start is that event's time (:func:`cycle_start`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from server.extensions import db
from server.models import Appeal, AppealEvent, SlaPolicy, Staff, Topic
from server.services.cache import AppCache
from server.services.calendar import add_working_days
from server.services.errors import Unprocessable

DEFAULTS: dict[tuple[str, str, str], tuple[str, int | None]] = {
    ("consultation", "", ""): ("working_days", 15),
    ("complaint", "", ""): ("working_days", 15),
    ("proposal", "", ""): ("working_days", 15),
    ("incident", "", ""): ("working_days", 3),
    ("incident", "", "emergency"): ("hours", 4),
    ("incident", "", "urgent"): ("hours", 24),
    ("incident", "", "normal"): ("working_days", 3),
    ("gratitude", "", ""): ("none", None),
}
CACHE_TTL_S = 60.0
STATES = ("on_time", "at_risk", "breached", "met")


@dataclass(frozen=True)
class Rule:
    """A resolved deadline rule: ``mode`` working_days | hours | none, and its amount."""

    mode: str
    amount: int | None


def _load_table() -> dict[tuple[str, str, str], Rule]:
    return {(p.appeal_type, p.topic_code, p.urgency): Rule(p.mode, p.amount)
            for p in db.session.scalars(select(SlaPolicy))}


_policies = AppCache("jauap_sla_policies", _load_table, CACHE_TTL_S,
                     outside=lambda: {k: Rule(*v) for k, v in DEFAULTS.items()})


def _table() -> dict[tuple[str, str, str], Rule]:
    return _policies.get()


def invalidate() -> None:
    """Drop the cached policy table (called after every edit)."""
    _policies.invalidate()


def rule_for(appeal_type: str, topic: str | None, urgency: str | None) -> Rule:
    """The deadline rule for an appeal: the most specific policy row, else the Art. 76 default."""
    table = _table()
    topic, urgency = topic or "", urgency or ""
    for key in ((appeal_type, topic, urgency), (appeal_type, topic, ""), (appeal_type, "", urgency),
                (appeal_type, "", "")):
        if key in table:
            return table[key]
    for key in ((appeal_type, "", urgency), (appeal_type, "", "")):
        if key in DEFAULTS:
            return Rule(*DEFAULTS[key])
    return Rule("working_days", 15)


def deadline(rule: Rule, start: datetime) -> datetime | None:
    """The due time of ``rule`` counted from ``start`` (None for ``none``)."""
    if rule.mode == "none" or not rule.amount:
        return None
    if rule.mode == "hours":
        return start + timedelta(hours=rule.amount)
    return add_working_days(start, rule.amount)


def due_at(appeal_type: str, topic: str, urgency: str | None, registered_at: datetime) -> datetime | None:
    """When the appeal must be answered, or None when it has no deadline (gratitude by default)."""
    return deadline(rule_for(appeal_type, topic, urgency), registered_at)


def state_at(created_at: datetime, due: datetime | None, now: datetime, at_risk_share: float) -> str:
    """``on_time``, ``at_risk`` (the given share of the time used) or ``breached``; ``none`` without a deadline.

    ``created_at`` is the start of the term: the registration, or the last reopening (:func:`cycle_start`).
    """
    if due is None:
        return "none"
    if now >= due:
        return "breached"
    total = (due - created_at).total_seconds()
    used = (now - created_at).total_seconds()
    return "at_risk" if total > 0 and used / total >= at_risk_share else "on_time"


def at_risk_share() -> float:
    """JAUAP_AT_RISK_SHARE (default 0.75)."""
    return float(current_app.config.get("JAUAP_AT_RISK_SHARE", 0.75))


def stored_or_computed(created_at: datetime, due: datetime | None, stored: str | None, paused_at: datetime | None,
                       now: datetime, share: float) -> str:
    """The state to show: the stored one once the tick or the close set it, else computed from the clock.

    A paused appeal keeps its stored state (its clock is stopped).
    """
    if stored in ("met", "breached") or paused_at is not None:
        return stored or ("none" if due is None else "on_time")
    computed = state_at(created_at, due, now, share)
    if stored == "at_risk" and computed == "on_time":
        return "at_risk"  # the share was changed since the mark: keep the mark until the due time moves
    return computed


REOPENED_KIND = "appeal.reopened"


def cycle_start_column():
    """A correlated SQL expression: the start of ``Appeal``'s current term (its last reopening, else registration)."""
    last_reopen = (select(func.max(AppealEvent.created_at))
                   .where(AppealEvent.appeal_id == Appeal.id, AppealEvent.kind == REOPENED_KIND)
                   .correlate(Appeal).scalar_subquery())
    return func.coalesce(last_reopen, Appeal.created_at)


def cycle_start(appeal: Appeal) -> datetime:
    """When the appeal's current term started: the last ``appeal.reopened`` event, else its registration.

    Only an appeal that was answered can have been reopened, so the others cost no query.
    """
    if appeal.due_at is None or appeal.answered_at is None or appeal.id is None:
        return appeal.created_at
    reopened = db.session.scalar(select(func.max(AppealEvent.created_at))
                                 .where(AppealEvent.appeal_id == appeal.id, AppealEvent.kind == REOPENED_KIND))
    return reopened or appeal.created_at


def display_state(appeal: Appeal, now: datetime) -> str:
    """:func:`stored_or_computed` for one appeal (the at-risk share measured from :func:`cycle_start`)."""
    if appeal.sla_state in ("met", "breached") or appeal.paused_at is not None or appeal.due_at is None:
        start = appeal.created_at  # the stored state wins: no need for the term's start
    else:
        start = cycle_start(appeal)
    return stored_or_computed(start, appeal.due_at, appeal.sla_state, appeal.paused_at, now, at_risk_share())


def reopen_cycle(appeal: Appeal, now: datetime) -> dict:
    """Start a fresh term for a reopened appeal, counted from ``now`` under the same policy.

    The SLA marks of the previous cycle are cleared (state, near-due warning, at-risk and breach marks,
    pause, the extension base); returns what the ``appeal.reopened`` event keeps of the previous cycle:
    ``previous_due_at``, ``previous_sla_state`` (``met``/``breached``, None without a deadline) and
    the new ``due_at``.
    """
    previous_due, previous_state = appeal.due_at, appeal.sla_state
    appeal.due_at = due_at(appeal.type, appeal.topic_code, appeal.urgency, now)
    appeal.original_due_at = None  # the due time before this term's first extension is its due_at
    appeal.sla_state = None
    appeal.sla_warned_at = appeal.sla_at_risk_at = appeal.sla_breached_at = None
    appeal.paused_at = None
    return {"previous_due_at": previous_due.isoformat() if previous_due else None,
            "previous_sla_state": previous_state,
            "due_at": appeal.due_at.isoformat() if appeal.due_at else None}


def rearm(appeal: Appeal, now: datetime) -> None:
    """After the due time moved later (extension, resume): an appeal comfortable again may be warned again.

    The at-risk mark and the near-due warning belong to the old due time; the events keep the history.
    """
    if appeal.sla_breached_at is not None or appeal.due_at is None:
        return
    if state_at(cycle_start(appeal), appeal.due_at, now, at_risk_share()) == "on_time":
        appeal.sla_state = "on_time" if appeal.sla_state == "at_risk" else appeal.sla_state
        appeal.sla_at_risk_at = None
        appeal.sla_warned_at = None


def mark_done(appeal: Appeal, now: datetime) -> None:
    """Store the closing SLA state: ``met`` when done by the due time, else ``breached`` (no deadline: unset)."""
    if appeal.due_at is None:
        return
    if now <= appeal.due_at and appeal.sla_breached_at is None:
        appeal.sla_state = "met"
    else:
        appeal.sla_state = "breached"
        appeal.sla_breached_at = appeal.sla_breached_at or now
    appeal.paused_at = None


# --- admin: the policy table --------------------------------------------------------------------


def list_policies() -> list[SlaPolicy]:
    """Every policy row, type defaults first."""
    return list(db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.appeal_type, SlaPolicy.topic_code,
                                                              SlaPolicy.urgency)))


def save_policy(appeal_type: str, topic_code: str, urgency: str, mode: str, amount: int | None, staff: Staff | None,
                now: datetime) -> SlaPolicy:
    """Create or replace the policy of (type, topic, urgency); ``""`` means any topic / any urgency."""
    # Type, urgency and mode are validated by the request schema; the topic must exist.
    if topic_code and db.session.get(Topic, topic_code) is None:
        raise Unprocessable("unknown_topic", field="topic_code", topic=topic_code)
    if mode != "none" and not amount:
        raise Unprocessable("sla_amount_required", field="amount")
    row = db.session.scalar(select(SlaPolicy).where(SlaPolicy.appeal_type == appeal_type,
                                                    SlaPolicy.topic_code == topic_code, SlaPolicy.urgency == urgency))
    if row is None:
        row = SlaPolicy(appeal_type=appeal_type, topic_code=topic_code, urgency=urgency)
        db.session.add(row)
    row.mode, row.amount = mode, (amount if mode != "none" else None)
    return _policies.saved(row, staff, now)


def delete_policy(policy_id: int) -> None:
    """Remove one policy row (the type default then applies); NotFound when missing."""
    _policies.delete_row(SlaPolicy, policy_id, "sla_policy_not_found")
