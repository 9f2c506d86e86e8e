"""Photos citizens sent through a chat channel: fetched from the provider by the worker, never in a webhook.

A webhook only records a MediaFetch row (``server.channels.conversation``); the row gets its appeal
when the citizen confirms. :func:`fetch_due` then works like the outbox (``services.outbox``):

1. **claim** due rows that have an appeal (``pending`` and due, or ``sending`` with an expired lease)
   in one short transaction, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
2. **fetch** each outside any transaction through its channel class (Telegram ``getFile`` + file
   download; WhatsApp media id -> URL -> download with the bearer token; an Instagram/Messenger
   attachment URL on the providers' CDN), at most ``media.MAX_BYTES``, then judge and re-encode
   the bytes with the photo pipeline (``server.media``: type by content, pixel limits, no trailing
   data, clean derivatives) and store them (content-addressed);
3. **record** in one short transaction fenced on ``(state='sending', attempts)``: an Attachment
   of kind ``citizen`` and an ``appeal.photo_added`` event (published after commit), or a retry
   with backoff, or ``dead`` - for a hostile or broken file at once, for a failing provider
   after :data:`MAX_ATTEMPTS`. Nothing a provider sends can stop the loop.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, or_, select, update

from notifications.base import UnknownChannel
from notifications.provider import FetchError
from server import media
from server.extensions import db
from server.models import Appeal, Attachment, MediaFetch
from server.realtime import publish
from server.services import outbox, replies
from server.services.evidence import media_root
from server.services.lifecycle import CITIZEN, record_event
from server.services.replay import lock_appeal

log = logging.getLogger(__name__)
BATCH = 5  # photos are larger than messages: a few per pass
FETCH_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class Claim:
    """A media row this worker holds, with its fencing token."""

    id: int
    channel: str
    media_ref: str
    appeal_id: int
    attempts: int


def claim_due(now: datetime, limit: int = BATCH) -> list[Claim]:
    """Take up to ``limit`` due rows (committed before returning)."""
    due = or_(and_(MediaFetch.state == "pending", MediaFetch.next_attempt_at <= now),
              and_(MediaFetch.state == "sending", MediaFetch.lease_until < now))
    query = (select(MediaFetch).where(due, MediaFetch.appeal_id.is_not(None))
             .order_by(MediaFetch.next_attempt_at, MediaFetch.id).limit(limit))
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(db.session.scalars(query))
    if not rows:
        db.session.rollback()
        return []
    lease = now + timedelta(seconds=limit * (FETCH_TIMEOUT_S * 2) + 60)
    claims = []
    for row in rows:
        row.attempts += 1
        row.state, row.lease_until = "sending", lease
        claims.append(Claim(row.id, row.channel, row.media_ref, row.appeal_id, row.attempts))
    db.session.commit()
    return claims


def fetch_bytes(claim: Claim) -> bytes:
    """The photo's bytes from its provider (FetchError on failure)."""
    name = replies.OUTBOX_CHANNEL.get(claim.channel)
    try:
        channel = outbox.channels().get(name or "")
    except UnknownChannel:
        raise FetchError(f"channel {claim.channel} is not configured", retry=True) from None
    download = getattr(channel, "download", None)
    if download is None:
        raise FetchError(f"channel {claim.channel} cannot download", retry=False)
    return download(claim.media_ref, limit=media.MAX_BYTES)


def _fenced(claim: Claim):
    return update(MediaFetch).where(MediaFetch.id == claim.id, MediaFetch.state == "sending",
                                    MediaFetch.attempts == claim.attempts)


def _fail(claim: Claim, error: str, retry: bool, now: datetime) -> str:
    if retry and claim.attempts < MAX_ATTEMPTS:
        state = "pending"
        values = {"next_attempt_at": now + timedelta(seconds=outbox.backoff_seconds(claim.attempts))}
    else:
        state, values = "dead", {}
    db.session.execute(_fenced(claim).values(state=state, lease_until=None, last_error=error[:1000], **values))
    db.session.commit()
    return state


def _attach(claim: Claim, facts: media.ImageFacts, now: datetime) -> str:
    """Record the stored photo on the appeal (once per content); returns the row's new state."""
    query = select(MediaFetch).where(MediaFetch.id == claim.id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = db.session.scalar(query)
    if row is None or row.state != "sending" or row.attempts != claim.attempts:
        db.session.rollback()  # another worker took the row over meanwhile
        return ""
    # The appeal row locked and read afresh: the event carries the appeal's state as of this commit, and its
    # id is taken after every earlier writer of this appeal committed (live clients order by id per appeal).
    lock_appeal(claim.appeal_id)
    appeal = db.session.get(Appeal, claim.appeal_id, populate_existing=True)
    events = []
    photo = db.session.scalar(select(Attachment).where(Attachment.appeal_id == claim.appeal_id,
                                                       Attachment.kind == "citizen",
                                                       Attachment.sha256 == facts.sha256))
    if photo is None:  # the same picture sent twice is one photo
        photo = Attachment(public_id=secrets.token_urlsafe(16), appeal_id=claim.appeal_id, kind="citizen",
                           sha256=facts.sha256, mime=facts.mime, size_bytes=facts.size_bytes, width=facts.width,
                           height=facts.height, exif_lat=facts.exif_lat, exif_lon=facts.exif_lon,
                           exif_time=facts.exif_time, created_at=now)
        db.session.add(photo)
        db.session.flush()
        events.append(record_event(appeal, "appeal.photo_added", CITIZEN, now, from_status=appeal.status,
                                   to_status=appeal.status,
                                   data={"photo": photo.public_id, "kind": "citizen", "channel": claim.channel}))
    row.state, row.lease_until, row.attachment_id, row.last_error = "sent", None, photo.id, None
    messages = publish.prepare(events)
    db.session.commit()
    publish.emit_all(messages)
    return "sent"


def fetch_one(claim: Claim, now: datetime) -> str:
    """Fetch, check, store and attach one claimed photo; returns the row's new state."""
    try:
        data = fetch_bytes(claim)
    except FetchError as exc:
        return _fail(claim, exc.reason, exc.retry, now)
    tz = ZoneInfo(current_app.config["JAUAP_TIMEZONE"])
    try:
        processed = media.process_upload(data, media.sha256_hex(data), tz)
    except media.MediaError as exc:
        # A hostile or broken file: refused for good, logged, the loop goes on.
        log.warning("media fetch %s refused: %s", claim.id, exc.code)
        return _fail(claim, f"refused: {exc.code}", False, now)
    media.store(media_root(), processed)
    return _attach(claim, processed.facts, now)


def fetch_due(now: datetime, limit: int = BATCH) -> dict:
    """Claim and process up to ``limit`` due photos; returns counts by outcome (never raises for one photo)."""
    claims = claim_due(now, limit)
    counts = {"claimed": len(claims), "sent": 0, "retry": 0, "dead": 0}
    for claim in claims:
        try:
            state = fetch_one(claim, now)
        except Exception as exc:  # a bug or a database hiccup on one row must not stop the others
            db.session.rollback()
            log.exception("media fetch %s failed", claim.id)
            state = _fail(claim, f"{type(exc).__name__}: {exc}", True, now)
        key = {"sent": "sent", "pending": "retry", "dead": "dead"}.get(state)
        if key:
            counts[key] += 1
    return counts
