"""The outbox worker's logic: claim due messages, send them outside any transaction, record the outcome.

``deliver_due(now, limit)``:

1. **Claim** in one short transaction: rows ``pending`` and due, or ``sending`` whose lease
   ran out (the worker that claimed them died). On PostgreSQL the select is ``FOR UPDATE
   SKIP LOCKED``, so concurrent workers take disjoint rows without waiting; SQLite starts
   every transaction with ``BEGIN IMMEDIATE``, so claims there are serialised. Claimed rows
   become ``sending`` with a lease and ``attempts + 1``; commit.
2. **Send** each through its channel (``notifications``), with no transaction open.
3. **Record**, one short transaction per row, fenced on ``(state='sending', attempts)``: a
   worker whose lease was taken over cannot overwrite the newer claim. ``ok`` -> ``sent``;
   ``retry`` -> ``pending`` after an exponential backoff with jitter (at least the remote's
   Retry-After), or ``dead`` after JAUAP_OUTBOX_MAX_ATTEMPTS; ``gone`` (Web Push 404/410) ->
   ``dead`` and the subscription deleted; ``permanent`` -> ``dead``.

Delivery is at-least-once: a worker killed between the push service's answer and step 3
leaves the row to be sent again when its lease expires.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, or_, select, update

from notifications.base import DeliveryResult, Registry, UnknownChannel
from notifications.webpush import WebPushSender
from server.extensions import db
from server.models import OutboundMessage, PushSubscription
from server.services import push, replies

log = logging.getLogger(__name__)

BATCH = 20  # rows per claim
SEND_TIMEOUT_S = 10.0
BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0
RETENTION_DAYS = 30  # sent and dead rows are kept this long (for support questions), then purged
_registry_lock = threading.Lock()
_rng = random.Random()


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds: what to send, and the fencing token (``attempts``)."""

    id: int
    channel: str
    recipient: dict
    payload: dict
    attempts: int
    subscription_id: int | None


def lease_seconds(limit: int) -> float:
    """How long a claim lasts: long enough to send the whole batch at the send timeout."""
    return limit * SEND_TIMEOUT_S + 30.0


def backoff_seconds(attempts: int, retry_after: float | None = None, rng: random.Random = _rng) -> float:
    """Wait before attempt ``attempts + 1``: 5 s doubling to at most 1 h, half of it jittered; >= Retry-After."""
    base = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    wait = base / 2 + rng.uniform(0, base / 2)  # jitter spreads retries of many rows failing together
    return max(wait, retry_after or 0.0)


def channels() -> Registry:
    """This app's channel registry (built once per process: one HTTP session, one parsed key)."""
    ext = current_app.extensions
    if "jauap_channels" not in ext:
        with _registry_lock:
            if "jauap_channels" not in ext:
                registry = Registry()
                registry.register(WebPushSender(push.vapid_key(), current_app.config["JAUAP_VAPID_SUBJECT"],
                                                policy=push.endpoint_policy(), timeout_s=SEND_TIMEOUT_S))
                for sender in replies.senders(SEND_TIMEOUT_S):  # the citizens' channels that are configured
                    registry.register(sender)
                ext["jauap_channels"] = registry
    return ext["jauap_channels"]


def _recipient(row: OutboundMessage, subs: dict[int, PushSubscription]) -> dict | None:
    if row.channel == "webpush":
        sub = subs.get(row.subscription_id) if row.subscription_id else None
        if sub is None:
            return None
        return {"endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth}
    return {"address": row.recipient} if row.recipient else None


def claim_due(now: datetime, limit: int = BATCH) -> list[Claimed]:
    """Take up to ``limit`` due rows for this worker (committed before returning)."""
    due = or_(
        and_(OutboundMessage.state == "pending", OutboundMessage.next_attempt_at <= now),
        and_(OutboundMessage.state == "sending", OutboundMessage.lease_until < now),
    )
    query = select(OutboundMessage).where(due).order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
    query = query.limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(db.session.scalars(query))
    if not rows:
        db.session.rollback()
        return []
    sub_ids = {r.subscription_id for r in rows if r.subscription_id}
    subs = {s.id: s for s in db.session.scalars(select(PushSubscription).where(PushSubscription.id.in_(sub_ids)))} \
        if sub_ids else {}
    lease_until = now + timedelta(seconds=lease_seconds(limit))
    claimed = []
    for row in rows:
        row.attempts += 1
        recipient = _recipient(row, subs)
        if recipient is None:
            row.state, row.lease_until, row.last_error = "dead", None, "no recipient"
            continue
        row.state, row.lease_until = "sending", lease_until
        claimed.append(Claimed(row.id, row.channel, recipient, dict(row.payload or {}), row.attempts,
                               row.subscription_id))
    db.session.commit()
    return claimed


def _fenced(claim: Claimed):
    return update(OutboundMessage).where(OutboundMessage.id == claim.id, OutboundMessage.state == "sending",
                                         OutboundMessage.attempts == claim.attempts)


def record(claim: Claimed, result: DeliveryResult, now: datetime, max_attempts: int) -> str:
    """Store the outcome of one send; returns the row's new state ('' if another worker owns it now)."""
    error = (result.error or "")[:1000] or None
    if result.ok:
        state, values = "sent", {"sent_at": now, "last_error": None}
    elif result.outcome == "retry" and claim.attempts < max_attempts:
        state = "pending"
        values = {"next_attempt_at": now + timedelta(seconds=backoff_seconds(claim.attempts, result.retry_after)),
                  "last_error": error}
    else:
        state, values = "dead", {"last_error": error}
        if result.outcome == "gone":
            # Keep this row as the record of why; the subscription (and its other queued rows) go.
            values["subscription_id"] = None
    res = db.session.execute(_fenced(claim).values(state=state, lease_until=None, last_status=result.status,
                                                   **values))
    if not res.rowcount:
        db.session.rollback()
        return ""
    if claim.subscription_id and result.outcome == "gone":
        db.session.execute(delete(PushSubscription).where(PushSubscription.id == claim.subscription_id))
    elif claim.subscription_id and result.ok:
        db.session.execute(update(PushSubscription).where(PushSubscription.id == claim.subscription_id)
                           .values(last_success_at=now))
    db.session.commit()
    return state


def _send(registry: Registry, claim: Claimed) -> DeliveryResult:
    try:
        return registry.get(claim.channel).send(claim.recipient, claim.payload)
    except UnknownChannel:
        return DeliveryResult.permanent(None, f"no channel {claim.channel!r}")
    except Exception as exc:  # a channel bug must not stop the other rows; try again later
        log.exception("outbox: channel %s failed on row %s", claim.channel, claim.id)
        return DeliveryResult.retry(None, None, f"{type(exc).__name__}: {exc}")


def deliver_due(now: datetime, limit: int = BATCH) -> dict:
    """Claim, send and record up to ``limit`` due messages; returns counts by outcome."""
    claimed = claim_due(now, limit)
    counts = {"claimed": len(claimed), "sent": 0, "retry": 0, "dead": 0}
    if not claimed:
        return counts
    registry = channels()
    max_attempts = int(current_app.config.get("JAUAP_OUTBOX_MAX_ATTEMPTS", 8))
    for claim in claimed:
        state = record(claim, _send(registry, claim), now, max_attempts)
        key = {"sent": "sent", "pending": "retry", "dead": "dead"}.get(state)
        if key:
            counts[key] += 1
    return counts


def purge_finished(now: datetime) -> int:
    """Delete sent and dead rows older than the retention period."""
    cutoff = now - timedelta(days=RETENTION_DAYS)
    res = db.session.execute(delete(OutboundMessage).where(OutboundMessage.state.in_(("sent", "dead")),
                                                           OutboundMessage.created_at < cutoff))
    return res.rowcount or 0
