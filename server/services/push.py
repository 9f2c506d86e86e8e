"""Web Push for staff devices: subscriptions tied to a login, pushes queued as outbox rows.

A subscription belongs to the login session (an ``ApiToken`` row: browser sessions and
bearer tokens both are) that created it, so logging out of one device silences that
device only. Pushes are queued, never sent, here: :func:`queue_for_events` runs inside
the transaction that records the events (``server.api.common.commit`` and the worker
tick), so a rolled-back change queues nothing, and a ``dedupe_key`` per (cause,
subscription) makes queueing the same cause twice a no-op. The outbox worker
(``server.services.outbox``) delivers them.

Only devices whose login is still valid get pushes. A push carries no personal data:
``{"kind", "appeal_id", "reg_no", "url"}`` (the contract with the field app).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import delete, or_, select

from notifications.webpush import EndpointPolicy, load_or_create_key, public_key_b64
from server.extensions import db
from server.models import ApiToken, Appeal, AppealEvent, OutboundMessage, PushSubscription, Staff
from server.services.errors import Unprocessable
from server.services.staff import find_token

ASSIGNMENT_KINDS = frozenset({"appeal.assigned", "appeal.reassigned"})
# Statuses in which the assignee still has the work in hand (the SLA clock is theirs).
WORKING = ("assigned", "accepted", "en_route", "on_site")
MAX_DEVICES = 10  # per person: the oldest subscription goes when an 11th device subscribes
_key_lock = threading.Lock()


def endpoint_policy() -> EndpointPolicy:
    """Which push endpoints this deployment may call (JAUAP_PUSH_HOSTS, JAUAP_PUSH_ALLOW_LOOPBACK)."""
    cfg = current_app.config
    return EndpointPolicy.of(cfg["JAUAP_PUSH_HOSTS"], bool(cfg.get("JAUAP_PUSH_ALLOW_LOOPBACK")))


def vapid_key() -> ec.EllipticCurvePrivateKey:
    """The VAPID private key from the instance folder (created mode 0600 on first use, then cached)."""
    ext = current_app.extensions
    if "jauap_vapid_key" not in ext:
        with _key_lock:
            if "jauap_vapid_key" not in ext:
                ext["jauap_vapid_key"] = load_or_create_key(current_app.instance_path)
    return ext["jauap_vapid_key"]


def public_key() -> str:
    """The VAPID public key for ``PushManager.subscribe({applicationServerKey})``."""
    return public_key_b64(vapid_key())


def subscribe(staff: Staff, token_id: int | None, endpoint: str, p256dh: str, auth: str,
              user_agent: str | None, now: datetime) -> tuple[PushSubscription, bool]:
    """Save this device's subscription for ``staff`` under the login ``token_id``; True when new.

    Upsert by endpoint: a browser re-subscribing (new login, rotated keys, another person
    on a shared phone) takes the row over, so a device has one subscription and one owner.
    """
    if token_id is None:
        raise Unprocessable("push_login_required")
    if endpoint_policy().problem(endpoint):
        raise Unprocessable("push_endpoint_not_allowed", field="endpoint")
    sub = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    created = sub is None
    if created:
        sub = PushSubscription(endpoint=endpoint, created_at=now)
        db.session.add(sub)
    sub.staff_id = staff.id
    sub.token_id = token_id
    sub.p256dh = p256dh
    sub.auth = auth
    sub.user_agent = (user_agent or "")[:300] or None
    db.session.flush()
    # Bound the rows one account can create (each is a URL the worker will POST to).
    surplus = list(db.session.scalars(
        select(PushSubscription.id).where(PushSubscription.staff_id == staff.id)
        .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).offset(MAX_DEVICES)))
    if surplus:
        db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(surplus)))
    return sub, created


def unsubscribe(staff: Staff, endpoint: str) -> bool:
    """Delete the caller's subscription for ``endpoint`` (someone else's is left alone); True if one went."""
    result = db.session.execute(delete(PushSubscription).where(
        PushSubscription.endpoint == endpoint, PushSubscription.staff_id == staff.id))
    return bool(result.rowcount)


def forget_login(token: str | None) -> int:
    """Logging out: delete the subscriptions created under this login token; returns how many."""
    row = find_token(token)
    if row is None:
        return 0
    result = db.session.execute(delete(PushSubscription).where(PushSubscription.token_id == row.id))
    return result.rowcount or 0


def purge_stale_subscriptions(now: datetime) -> int:
    """Delete subscriptions whose login ended (revoked, expired, or removed) without a logout."""
    live = select(ApiToken.id).where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)
    result = db.session.execute(delete(PushSubscription).where(
        or_(PushSubscription.token_id.is_(None), PushSubscription.token_id.not_in(live))))
    return result.rowcount or 0


def live_subscriptions(staff_id: int, now: datetime) -> list[PushSubscription]:
    """The devices of ``staff_id`` whose login is still valid (an ended login gets no pushes)."""
    return list(db.session.scalars(
        select(PushSubscription)
        .join(ApiToken, ApiToken.id == PushSubscription.token_id)
        .join(Staff, Staff.id == PushSubscription.staff_id)
        .where(PushSubscription.staff_id == staff_id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now,
               ApiToken.auth_epoch == Staff.auth_epoch, Staff.active.is_(True))
        .order_by(PushSubscription.id)))


def payload_for(kind: str, appeal: Appeal) -> dict:
    """The push body: what happened and where to look; no names, phones or descriptions."""
    return {"kind": kind, "appeal_id": appeal.id, "reg_no": appeal.reg_no, "url": f"/field/#/appeal/{appeal.id}"}


def queue_push(staff_id: int, appeal: Appeal, kind: str, cause: str, now: datetime) -> int:
    """Queue ``kind`` about ``appeal`` to every live device of ``staff_id``, once per ``cause``."""
    subs = live_subscriptions(staff_id, now)
    if not subs:
        return 0
    keys = {sub.id: f"push:{cause}:s{sub.id}" for sub in subs}
    # An INSERT that hit the unique key would abort the caller's whole transaction: look first.
    known = set(db.session.scalars(select(OutboundMessage.dedupe_key).where(
        OutboundMessage.dedupe_key.in_(list(keys.values())))))
    payload = payload_for(kind, appeal)
    queued = 0
    for sub in subs:
        if keys[sub.id] in known:
            continue
        db.session.add(OutboundMessage(
            channel="webpush", dedupe_key=keys[sub.id], subscription_id=sub.id, staff_id=staff_id,
            appeal_id=appeal.id, payload=payload, state="pending", attempts=0, next_attempt_at=now,
            created_at=now))
        queued += 1
    if queued:
        db.session.flush()
    return queued


def queue_for_events(events: list[AppealEvent], now: datetime) -> int:
    """Queue an ``appeal.assigned`` push to the new assignee of each (re)assignment in ``events``.

    Call inside the transaction that wrote the events, before it commits.
    """
    queued = 0
    for event in events:
        if event.kind not in ASSIGNMENT_KINDS:
            continue
        assignee_id = (event.data or {}).get("assignee_id")
        appeal = event.appeal
        # Assigned and moved on within the same unit of work: only the current assignee hears of it.
        if not assignee_id or appeal is None or appeal.assignee_id != assignee_id:
            continue
        queued += queue_push(assignee_id, appeal, "appeal.assigned", f"ev{event.id}", now)
    return queued


def warn_sla(now: datetime, limit: int = 500) -> int:
    """Warn assignees once about work due within JAUAP_SLA_WARN_HOURS (``sla.warning``); returns appeals warned."""
    window = timedelta(hours=float(current_app.config.get("JAUAP_SLA_WARN_HOURS", 24.0)))
    appeals = list(db.session.scalars(
        select(Appeal).where(Appeal.status.in_(WORKING), Appeal.assignee_id.is_not(None),
                             Appeal.due_at.is_not(None), Appeal.due_at <= now + window,
                             Appeal.sla_warned_at.is_(None))
        .order_by(Appeal.due_at, Appeal.id).limit(limit)))
    for appeal in appeals:
        appeal.sla_warned_at = now
        queue_push(appeal.assignee_id, appeal, "sla.warning", f"sla{appeal.id}:{int(appeal.due_at.timestamp())}", now)
    if appeals:
        db.session.flush()
    return len(appeals)
