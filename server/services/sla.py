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
from registration to the due time used), ``breached`` (past due), and ``met``
(answered or otherwise done by the due time; stored at close).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, SlaPolicy, Staff, Topic
from server.services.calendar import add_working_days
from server.services.errors import NotFound, Unprocessable

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
_CACHE_KEY = "jauap_sla_policies"
STATES = ("on_time", "at_risk", "breached", "met")


@dataclass(frozen=True)
class Rule:
    """A resolved deadline rule: ``mode`` working_days | hours | none, and its amount."""

    mode: str
    amount: int | None


def _table() -> dict[tuple[str, str, str], Rule]:
    if not has_app_context():
        return {k: Rule(*v) for k, v in DEFAULTS.items()}
    cached = current_app.extensions.get(_CACHE_KEY)
    if cached is not None and _time.monotonic() - cached[0] < CACHE_TTL_S:
        return cached[1]
    table = {(p.appeal_type, p.topic_code, p.urgency): Rule(p.mode, p.amount)
             for p in db.session.scalars(select(SlaPolicy))}
    current_app.extensions[_CACHE_KEY] = (_time.monotonic(), table)
    return table


def invalidate() -> None:
    """Drop the cached policy table (called after every edit)."""
    if has_app_context():
        current_app.extensions.pop(_CACHE_KEY, None)


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
    """``on_time``, ``at_risk`` (the given share of the time used) or ``breached``; ``none`` without a deadline."""
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


def display_state(appeal: Appeal, now: datetime) -> str:
    """:func:`stored_or_computed` for one appeal."""
    return stored_or_computed(appeal.created_at, appeal.due_at, appeal.sla_state, appeal.paused_at, now,
                              at_risk_share())


def rearm(appeal: Appeal, now: datetime) -> None:
    """After the due time moved later (extension, resume): an appeal comfortable again may be warned again.

    The at-risk mark and the near-due warning belong to the old due time; the events keep the history.
    """
    if appeal.sla_breached_at is not None or appeal.due_at is None:
        return
    if state_at(appeal.created_at, appeal.due_at, now, at_risk_share()) == "on_time":
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
    row.updated_by_id = staff.id if staff is not None else None
    row.updated_at = now
    db.session.flush()
    invalidate()
    return row


def delete_policy(policy_id: int) -> None:
    """Remove one policy row (the type default then applies); NotFound when missing."""
    row = db.session.get(SlaPolicy, policy_id)
    if row is None:
        raise NotFound("sla_policy_not_found")
    db.session.delete(row)
    db.session.flush()
    invalidate()
