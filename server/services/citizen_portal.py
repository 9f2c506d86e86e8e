"""The citizen's side on the web: the report form, the public tracking view, and the verdict on the answer.

**Report** (``submit_report``), as named steps: replay a retried submission (same
Idempotency-Key: the first appeal, never a second one) -> consent -> cheap photo checks
-> count the attempt against the rate limit -> end the read transaction -> judge, hash
and re-encode the photos (``server.media``, the field evidence pipeline) and store their
files -> ``intake.register_appeal`` (channel ``web``, actor CITIZEN) -> record the
consent on the Citizen row -> attach the photos (kind ``citizen``) with their events.

**Tracking** (``tracking_view``): what the holder of the tracking link may see, and
nothing else: the number, type, topic, a timeline of public stages (no actors, no
reasons, no internal steps such as escalations or photo uploads), the answer, the
"after" photos (derivatives only) and whether a verdict can be given. Never the
citizen's contact, other citizens, staff names or the description.

**Verdict** (``give_feedback``): once per answer cycle (a Feedback newer than
``answered_at``), within ``JAUAP_FEEDBACK_WINDOW_DAYS`` (15) of the answer. Confirm
closes an answered appeal; a dispute reopens it with the citizen's comment as the
reason and puts it back in the unit's queue, auto-assigned when someone is on duty.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from server import media
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, Citizen, Feedback
from server.ratelimit import limiter, parse_limits
from server.schemas import AppealIn, CitizenIn, FeedbackIn, ReportIn
from server.services import dispatch, intake, replay
from server.services.errors import NotFound, ServiceError, Unprocessable
from server.services.evidence import media_root
from server.services.lifecycle import CITIZEN, record_event, transition

# The consent text the report page shows; its wording, per language, is the i18n key
# ``citizen.consent.<version>`` in pwa/shared/i18n/*.json. A new wording gets a new version.
CONSENT_VERSION = "2026-11"
MAX_PHOTOS = 3
# The page compresses photos to about 1600 px before sending (a few hundred KB); 2 MiB leaves room.
MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 64 * 1024
KEY_PREFIX = "web:"  # citizen keys live apart from the operators' Idempotency-Keys
PUBLIC_VARIANTS = ("thumb", "large")
FEEDBACK_STATUSES = ("answered", "closed")
# The public name of each status: the citizen need not learn that a point fell outside every sector.
PUBLIC_STAGE = {"unrouted": "routed"}


class RateLimited(ServiceError):
    """Too many reports from one client address."""

    status = 429


class PhotoRefused(ServiceError):
    """A photo the pipeline refuses (type, size, pixels, corruption, trailing data, hash)."""

    def __init__(self, error: media.MediaError):
        super().__init__(error.code, field="photo", **error.params)
        self.status = error.status


@dataclass
class ReportResult:
    """What the report did: the appeal, whether it is new, and the events to publish."""

    appeal: Appeal
    created: bool
    events: list[AppealEvent] = field(default_factory=list)


# --- the report ---------------------------------------------------------------------------------


def submit_report(data: ReportIn, photos: list[bytes], *, client_uuid: str, client: str,
                  now: datetime) -> ReportResult:
    """File a citizen's web report (see the module docstring); flushes, the caller commits."""
    key = KEY_PREFIX + client_uuid
    appeal_in = to_appeal_in(data)
    hashes = _unique(data.photos_sha256)
    prior = _replay(key, appeal_in, hashes)
    if prior is not None:
        return prior
    check_consent(data)
    photos = _check_photos(photos, data.photos_sha256)
    count_attempt(client, now)
    # End the read transaction before the slow part: on SQLite every transaction holds the write lock.
    db.session.commit()
    processed = [_process(data_, sha) for data_, sha in zip(photos, hashes, strict=True)]
    for item in processed:
        media.store(media_root(), item)  # files first; the rows that make them visible come next
    result = intake.register_appeal(appeal_in, actor=CITIZEN, now=now, idempotency_key=key)
    if not result.created:  # a concurrent copy of this submission committed first
        _same_photos(result.appeal, hashes)
        return ReportResult(result.appeal, False, [])
    _record_consent(result.appeal, data, now)
    events = list(result.events)
    for item in processed:
        events.append(_attach(result.appeal, item.facts, now))
    return ReportResult(result.appeal, True, events)


def to_appeal_in(data: ReportIn) -> AppealIn:
    """The intake request a web report makes (channel ``web``; the language goes with the citizen)."""
    return AppealIn(type=data.type, topic=data.topic, description=data.description, lat=data.lat, lon=data.lon,
                    accuracy_m=data.accuracy_m if data.lat is not None else None, address=data.address,
                    channel="web", citizen=CitizenIn(name=data.name, phone=data.phone, language=data.language))


def check_consent(data: ReportIn) -> None:
    """Refuse a report without consent, or with consent to a text we no longer show."""
    if not data.consent:
        raise Unprocessable("consent_required", field="consent")
    if data.consent_version != CONSENT_VERSION:
        raise Unprocessable("consent_outdated", field="consent")


def count_attempt(client: str, now: datetime) -> None:
    """Count one report attempt of ``client``; RateLimited (429) past JAUAP_REPORT_LIMITS."""
    limits = parse_limits(current_app.config["JAUAP_REPORT_LIMITS"])
    wait = limiter().hit("report", client, limits, now.timestamp())
    if wait is not None:
        raise RateLimited("report_rate_limited", minutes=max(1, math.ceil(wait / 60)),
                          detail={"retry_after": wait})


def _unique(hashes: list[str]) -> list[str]:
    return list(dict.fromkeys(hashes))


def _replay(key: str, appeal_in: AppealIn, hashes: list[str]) -> ReportResult | None:
    found = db.session.scalar(select(Appeal.id).where(Appeal.idempotency_key == key))
    if found is None:
        return None
    appeal = db.session.get(Appeal, found)
    if appeal.request_hash != intake.fingerprint(appeal_in):
        raise Unprocessable("idempotency_key_reused", field="Idempotency-Key")
    _same_photos(appeal, hashes)
    return ReportResult(appeal, False, [])


def _same_photos(appeal: Appeal, hashes: list[str]) -> None:
    stored = list(db.session.scalars(select(Attachment.sha256).where(
        Attachment.appeal_id == appeal.id, Attachment.kind == "citizen").order_by(Attachment.id)))
    if stored != hashes:
        raise Unprocessable("idempotency_key_reused", field="Idempotency-Key")


def _check_photos(photos: list[bytes], hashes: list[str]) -> list[bytes]:
    """Cheap checks before any image work; returns the photos with repeats of one file dropped."""
    if len(photos) != len(hashes):
        raise Unprocessable("photo_hash_count", field="photos_sha256")
    if len(photos) > MAX_PHOTOS:
        raise Unprocessable("too_many_photos", field="photo", limit=MAX_PHOTOS)
    for data in photos:
        if len(data) > MAX_PHOTO_BYTES:
            raise PhotoRefused(media.MediaError("image_too_large", 413, limit=MAX_PHOTO_BYTES))
    seen, out = set(), []
    for data, sha in zip(photos, hashes, strict=True):
        if sha not in seen:
            seen.add(sha)
            out.append(data)
    return out


def _process(data: bytes, sha: str) -> media.ProcessedImage:
    try:
        return media.process_upload(data, sha, ZoneInfo(current_app.config["JAUAP_TIMEZONE"]))
    except media.MediaError as exc:
        raise PhotoRefused(exc) from None


def _record_consent(appeal: Appeal, data: ReportIn, now: datetime) -> Citizen:
    """The consent is recorded on the applicant's row (one is made when they gave no name or phone)."""
    citizen = db.session.get(Citizen, appeal.citizen_id) if appeal.citizen_id else None
    if citizen is None:
        citizen = Citizen(channel="web", handle=None, language=data.language, created_at=now)
        db.session.add(citizen)
        db.session.flush()
        appeal.citizen_id = citizen.id
    citizen.consent_at = now
    citizen.consent_version = data.consent_version
    return citizen


def _attach(appeal: Appeal, facts: media.ImageFacts, now: datetime) -> AppealEvent:
    photo = Attachment(
        public_id=secrets.token_urlsafe(16), appeal_id=appeal.id, kind="citizen", sha256=facts.sha256,
        mime=facts.mime, size_bytes=facts.size_bytes, width=facts.width, height=facts.height,
        exif_lat=facts.exif_lat, exif_lon=facts.exif_lon, exif_time=facts.exif_time, uploaded_by_id=None,
        created_at=now,
    )
    db.session.add(photo)
    db.session.flush()
    return record_event(appeal, "appeal.photo_added", CITIZEN, now, from_status=appeal.status,
                        to_status=appeal.status, data={"photo": photo.public_id, "kind": "citizen"})


# --- tracking -----------------------------------------------------------------------------------


def appeal_by_token(token: str) -> Appeal:
    """The appeal behind a tracking token; NotFound for anything else."""
    if not token or len(token) > 64:
        raise NotFound("appeal_not_found")
    appeal = db.session.scalar(select(Appeal).where(Appeal.tracking_token == token))
    if appeal is None:
        raise NotFound("appeal_not_found")
    return appeal


def public_stage(status: str) -> str:
    """The stage a citizen is shown for an internal status."""
    return PUBLIC_STAGE.get(status, status)


def timeline(appeal: Appeal) -> list[dict]:
    """Status changes as public stages, oldest first, repeats merged: ``[{stage, at}]`` (no who, no why)."""
    rows = db.session.execute(
        select(AppealEvent.to_status, AppealEvent.from_status, AppealEvent.created_at)
        .where(AppealEvent.appeal_id == appeal.id, AppealEvent.to_status.is_not(None))
        .order_by(AppealEvent.id)
    ).all()
    out: list[dict] = []
    for to_status, from_status, at in rows:
        if to_status == from_status:
            continue  # photos, escalations, verdicts on a closed appeal: no stage of their own
        stage = public_stage(to_status)
        if out and out[-1]["stage"] == stage:
            continue
        out.append({"stage": stage, "at": at})
    return out


def after_photos(appeal: Appeal) -> list[Attachment]:
    """The "after" photos of the work, oldest first."""
    return list(db.session.scalars(select(Attachment).where(
        Attachment.appeal_id == appeal.id, Attachment.kind == "after").order_by(Attachment.id)))


def _window() -> timedelta:
    return timedelta(days=current_app.config["JAUAP_FEEDBACK_WINDOW_DAYS"])


def current_feedback(appeal: Appeal) -> Feedback | None:
    """The verdict given on the current answer (None before one, or after a new answer)."""
    if appeal.answered_at is None:
        return None
    return db.session.scalar(select(Feedback).where(
        Feedback.appeal_id == appeal.id, Feedback.created_at >= appeal.answered_at).order_by(Feedback.id.desc())
        .limit(1))


def feedback_state(appeal: Appeal, now: datetime) -> dict:
    """Whether a verdict can be given now, until when, and the one given on this answer."""
    answered = appeal.status in FEEDBACK_STATUSES and appeal.answered_at is not None
    # A dispute reopens the appeal and stays "given" until the next answer starts a new cycle.
    given = current_feedback(appeal)
    until = appeal.answered_at + _window() if answered else None
    return {
        "open": bool(answered and given is None and now <= until),
        "until": until,
        "given": None if given is None else {"verdict": given.verdict, "rating": given.rating,
                                             "at": given.created_at},
    }


def tracking_view(token: str, now: datetime, lang: str = "ru") -> dict:
    """The public-safe view of an appeal for its tracking link (see the module docstring); names in ``lang``."""
    appeal = appeal_by_token(token)
    done = appeal.status in FEEDBACK_STATUSES
    return {
        "reg_no": appeal.reg_no,
        "type": appeal.type,
        "topic": {"code": appeal.topic_code, "name": appeal.topic.name(lang)},
        "stage": public_stage(appeal.status),
        "created_at": appeal.created_at,
        "due_at": appeal.due_at,
        "timeline": timeline(appeal),
        "answer": {"text": appeal.answer_text, "at": appeal.answered_at} if done and appeal.answer_text else None,
        "photos": [p.public_id for p in after_photos(appeal)],
        "feedback": feedback_state(appeal, now),
    }


def after_photo_file(token: str, public_id: str, variant: str) -> Path:
    """A derivative (thumb or large) of an "after" photo of this token's appeal; NotFound otherwise."""
    if variant not in PUBLIC_VARIANTS:
        raise NotFound("photo_not_found")
    appeal = appeal_by_token(token)
    photo = db.session.scalar(select(Attachment).where(
        Attachment.public_id == public_id, Attachment.appeal_id == appeal.id, Attachment.kind == "after"))
    if photo is None:
        raise NotFound("photo_not_found")
    return media.derived_path(media_root(), photo.sha256, variant)


# --- the verdict ----------------------------------------------------------------------------------


def give_feedback(token: str, body: FeedbackIn, now: datetime) -> list[AppealEvent]:
    """Record the citizen's verdict on the answer and act on it; returns the events (flushed, not committed)."""
    appeal = appeal_by_token(token)
    replay.lock_appeal(appeal.id)  # two verdicts at once: the second waits, then sees the first
    db.session.refresh(appeal)
    if appeal.status not in FEEDBACK_STATUSES or appeal.answered_at is None:
        raise Unprocessable("feedback_not_open", field="verdict")
    if current_feedback(appeal) is not None:
        raise Unprocessable("feedback_already_given", field="verdict")
    if now > appeal.answered_at + _window():
        raise Unprocessable("feedback_window_closed", field="verdict", days=_window().days)
    feedback = Feedback(appeal_id=appeal.id, verdict=body.verdict, rating=body.rating, comment=body.comment,
                        created_at=now)
    db.session.add(feedback)
    db.session.flush()
    data = {"feedback_id": feedback.id, "verdict": body.verdict, "rating": body.rating}
    if body.verdict == "dispute":
        return _dispute(appeal, body.comment or "", data, now)
    if body.comment:
        data["comment"] = body.comment
    if appeal.status == "answered":
        return [transition(appeal, "close", CITIZEN, now, data=data)]
    # Already closed (by the centre): the verdict is still history, without a status change.
    return [record_event(appeal, "appeal.feedback", CITIZEN, now, from_status=appeal.status,
                         to_status=appeal.status, data=data)]


def _dispute(appeal: Appeal, comment: str, data: dict, now: datetime) -> list[AppealEvent]:
    """Reopen with the citizen's comment as the reason; back to the unit's queue, assigned by the rule if possible."""
    reopened = transition(appeal, "reopen", CITIZEN, now, reason=comment, data=data)
    appeal.assignee_id = None
    appeal.assigned_at = None
    assigned = dispatch.auto_assign(appeal, now)
    return [reopened] if assigned is None else [reopened, assigned]
