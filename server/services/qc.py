"""Quality control: the inspector's queue of finished work, the QC analyst's call-backs, unit figures.

* :func:`inspection_queue` lists resolved appeals awaiting verification, flagged ones
  (a field step taken outside the geofence) first, each with its evidence: the
  before/after photos and where the device was at arrival and resolution compared
  with the appeal point and each photo's EXIF position.
* :func:`approve` verifies the work and answers the citizen in the same transaction
  (``verify`` by the inspector, then ``answer`` by the system; the view's commit
  queues the ``answered`` reply through services.replies). :func:`return_work` sends
  it back to the assignee with a reason.
* :func:`draw_callbacks` draws the day's call-back sample of closed appeals: a share
  of the pool (JAUAP_CALLBACK_SAMPLE_SHARE), capped per day (JAUAP_CALLBACK_PER_DAY),
  reproducible from its seed. :func:`record_callback` stores what the citizen said.
* :func:`unit_quality` computes each unit's quality figures from citizen feedback,
  call-backs and returned work.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select, true
from sqlalchemy.orm import selectinload

from geo.distance import geodesic_distance_m
from server import geosql
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, CallbackSample, Citizen, Feedback, Staff, Unit
from server.services import audit
from server.services.calendar import local_date
from server.services.errors import NotFound, Unprocessable
from server.services.lifecycle import SYSTEM, Actor, transition

# Closed appeals older than this are not drawn any more: a call-back weeks later tells little.
CALLBACK_POOL_DAYS = 14


@dataclass
class Evidence:
    """One appeal in the inspector's queue with what proves the work."""

    appeal: Appeal
    resolved_at: datetime | None
    photos: list[Attachment]
    points: list[dict] = field(default_factory=list)  # {kind, lon, lat, accuracy_m?, distance_m, label?}


def _distance(point, lon, lat) -> float | None:
    if point is None or lon is None or lat is None:
        return None
    return round(geodesic_distance_m(point[0], point[1], lon, lat), 1)


EVIDENCE_KINDS = ("appeal.on_site", "appeal.resolved")


def _evidence(appeal: Appeal, events: list[AppealEvent], photos: list[Attachment]) -> Evidence:
    """Assemble the evidence of ``appeal`` from its arrive/resolve events and photos (both in id order)."""
    point = geosql.lonlat(appeal.location)
    points: list[dict] = []
    if point is not None:
        points.append({"kind": "appeal", "lon": point[0], "lat": point[1], "distance_m": 0.0})
    resolved_at = None
    for ev in events:
        if ev.kind == "appeal.resolved":
            resolved_at = ev.created_at
        pos = (ev.data or {}).get("position")
        if pos and pos.get("lon") is not None:
            points.append({"kind": "arrive" if ev.kind == "appeal.on_site" else "resolve", "lon": pos["lon"],
                           "lat": pos["lat"], "accuracy_m": pos.get("accuracy_m"),
                           "distance_m": _distance(point, pos["lon"], pos["lat"]),
                           "flagged": bool((ev.data or {}).get("flagged"))})
    for photo in photos:
        if photo.exif_lat is not None and photo.exif_lon is not None:
            points.append({"kind": f"photo_{photo.kind}", "lon": photo.exif_lon, "lat": photo.exif_lat,
                           "photo": photo.public_id,
                           "distance_m": _distance(point, photo.exif_lon, photo.exif_lat)})
    return Evidence(appeal=appeal, resolved_at=resolved_at, photos=photos, points=points)


def evidence_for_many(appeals: list[Appeal]) -> list[Evidence]:
    """The evidence of each of ``appeals`` (photos; device, appeal and EXIF positions with distances).

    In their order, in a fixed number of queries.

    The inspection queue used to read events and photos appeal by appeal (two queries each, plus
    the unit and assignee), which made it the slowest read under load.
    """
    ids = [a.id for a in appeals]
    events: dict[int, list[AppealEvent]] = {i: [] for i in ids}
    photos: dict[int, list[Attachment]] = {i: [] for i in ids}
    if ids:
        for ev in db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id.in_(ids),
                                                               AppealEvent.kind.in_(EVIDENCE_KINDS))
                                     .order_by(AppealEvent.id)):
            events[ev.appeal_id].append(ev)
        for photo in db.session.scalars(select(Attachment).where(Attachment.appeal_id.in_(ids))
                                        .order_by(Attachment.id)):
            photos[photo.appeal_id].append(photo)
    return [_evidence(a, events[a.id], photos[a.id]) for a in appeals]


def inspection_queue(limit: int = 50) -> list[Evidence]:
    """Resolved appeals awaiting verification: flagged first, then the longest waiting first."""
    rows = list(db.session.scalars(
        select(Appeal).where(Appeal.status == "resolved")
        .options(selectinload(Appeal.unit), selectinload(Appeal.assignee))
        .order_by(case((Appeal.flagged_at.is_(None), 1), else_=0), Appeal.updated_at, Appeal.id)
        .limit(limit)))
    return evidence_for_many(rows)


def _resolved(appeal_id: int) -> Appeal:
    # Row lock: two inspectors deciding the same appeal at once take turns (the second sees its new status).
    appeal = db.session.scalar(select(Appeal).where(Appeal.id == appeal_id).with_for_update(of=Appeal)
                               .execution_options(populate_existing=True))
    if appeal is None:
        raise NotFound("appeal_not_found")
    return appeal


def approve(appeal_id: int, inspector: Staff, answer: str, now: datetime) -> list[AppealEvent]:
    """Verify the work and answer the citizen: both events, for the caller's commit to queue the reply."""
    answer = (answer or "").strip()
    if not answer:
        raise Unprocessable("answer_required", field="answer")
    appeal = _resolved(appeal_id)
    verified = transition(appeal, "verify", Actor.of(inspector), now)
    # The answer goes out as soon as the work is checked: the system takes the step, the text is the inspector's.
    answered = transition(appeal, "answer", SYSTEM, now, data={"answer": answer, "verified_by": inspector.id})
    appeal.answer_text = answer
    return [verified, answered]


def return_work(appeal_id: int, inspector: Staff, reason: str, now: datetime) -> list[AppealEvent]:
    """Send the work back to the assignee with a reason (required)."""
    appeal = _resolved(appeal_id)
    return [transition(appeal, "return_work", Actor.of(inspector), now, reason=reason)]


# --- call-backs ---------------------------------------------------------------------------------

def callback_pool(now: datetime) -> list[int]:
    """Ids of closed appeals with a phone number, closed in the last CALLBACK_POOL_DAYS, never drawn."""
    drawn = select(CallbackSample.appeal_id)
    return list(db.session.scalars(
        select(Appeal.id).join(Citizen, Citizen.id == Appeal.citizen_id)
        .where(Appeal.status == "closed", Appeal.closed_at >= now - timedelta(days=CALLBACK_POOL_DAYS),
               Appeal.closed_at <= now, Citizen.phone.is_not(None), Citizen.phone != "",
               Appeal.id.not_in(drawn))
        .order_by(Appeal.id)))


def sample_size(pool: int, share: float, per_day: int) -> int:
    """How many to draw from a pool: the share (rounded up, so a small pool still yields one), capped."""
    if pool <= 0 or share <= 0:
        return 0
    size = min(pool, math.ceil(pool * min(share, 1.0)))
    return min(size, per_day) if per_day > 0 else size


def pick(pool: list[int], size: int, seed: str) -> list[int]:
    """A reproducible random choice of ``size`` ids from ``pool`` (same pool and seed: same choice)."""
    return sorted(random.Random(seed).sample(sorted(pool), size))


def draw_callbacks(now: datetime, *, share: float, per_day: int, seed: str | None = None) -> list[CallbackSample]:
    """Today's call-back sample (Almaty day), drawn once: a repeat call returns the same rows."""
    day = local_date(now)
    existing = list(db.session.scalars(select(CallbackSample).where(CallbackSample.sampled_on == day)
                                       .order_by(CallbackSample.id)))
    if existing:
        return existing
    seed = seed or f"callbacks:{day.isoformat()}"
    pool = callback_pool(now)
    chosen = pick(pool, sample_size(len(pool), share, per_day), seed)
    rows = [CallbackSample(appeal_id=i, sampled_on=day, sampled_at=now, seed=seed) for i in chosen]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def open_callbacks(now: datetime) -> list[CallbackSample]:
    """The call-backs still to make (any day's), oldest draw first."""
    return list(db.session.scalars(select(CallbackSample).where(CallbackSample.recorded_at.is_(None))
                                   .order_by(CallbackSample.sampled_on, CallbackSample.id)))


def record_callback(sample_id: int, analyst: Staff, now: datetime, *, reached: bool, satisfied: int | None,
                    comment: str | None) -> CallbackSample:
    """Store the outcome of one call-back (once); ``satisfied`` (1-5) only when the citizen was reached."""
    row = db.session.get(CallbackSample, sample_id)
    if row is None:
        raise NotFound("callback_not_found")
    if row.recorded_at is not None:
        raise Unprocessable("callback_recorded", field="id")
    if reached and satisfied is None:
        raise Unprocessable("satisfaction_required", field="satisfied")
    row.reached, row.satisfied = reached, satisfied if reached else None
    row.comment = (comment or "").strip() or None
    row.recorded_at, row.recorded_by = now, analyst.id
    audit.record("qc.callback", analyst, now, object_type="appeal", object_id=row.appeal_id,
                 data={"reached": reached, "satisfied": row.satisfied})
    return row


# --- unit figures -------------------------------------------------------------------------------

def _ratio(part, whole) -> float | None:
    return round(part / whole, 3) if whole else None


def unit_quality(since: datetime | None = None) -> list[dict]:
    """Per unit: mean citizen rating, dispute rate, call-back satisfaction, returned-work rate."""
    def _since(col):
        return col >= since if since is not None else true()

    fb = dict((r[0], r[1:]) for r in db.session.execute(
        select(Appeal.unit_id, func.avg(Feedback.rating), func.count(Feedback.rating), func.count(),
               func.sum(case((Feedback.verdict == "dispute", 1), else_=0)))
        .join(Appeal, Appeal.id == Feedback.appeal_id).where(_since(Feedback.created_at))
        .group_by(Appeal.unit_id)))
    cb = dict((r[0], r[1:]) for r in db.session.execute(
        select(Appeal.unit_id, func.avg(CallbackSample.satisfied), func.count(),
               func.sum(case((CallbackSample.reached.is_(True), 1), else_=0)))
        .join(Appeal, Appeal.id == CallbackSample.appeal_id)
        .where(CallbackSample.recorded_at.is_not(None), _since(CallbackSample.recorded_at))
        .group_by(Appeal.unit_id)))
    work = dict((r[0], r[1:]) for r in db.session.execute(
        select(Appeal.unit_id, func.sum(case((AppealEvent.kind == "appeal.resolved", 1), else_=0)),
               func.sum(case((AppealEvent.kind == "appeal.returned", 1), else_=0)))
        .join(Appeal, Appeal.id == AppealEvent.appeal_id)
        .where(and_(AppealEvent.kind.in_(("appeal.resolved", "appeal.returned")), _since(AppealEvent.created_at)))
        .group_by(Appeal.unit_id)))
    out = []
    for unit in db.session.scalars(select(Unit).order_by(Unit.code)):
        avg_rating, rated, feedbacks, disputes = fb.get(unit.id, (None, 0, 0, 0))
        avg_sat, calls, reached = cb.get(unit.id, (None, 0, 0))
        resolved, returned = work.get(unit.id, (0, 0))
        out.append({
            "unit": unit.code,
            "feedback_count": int(feedbacks or 0),
            "mean_rating": round(float(avg_rating), 2) if avg_rating is not None else None,
            "rated_count": int(rated or 0),
            "dispute_rate": _ratio(int(disputes or 0), int(feedbacks or 0)),
            "callbacks": int(calls or 0),
            "callback_reached_rate": _ratio(int(reached or 0), int(calls or 0)),
            "callback_satisfaction": round(float(avg_sat), 2) if avg_sat is not None else None,
            "resolved_count": int(resolved or 0),
            "returned_count": int(returned or 0),
            "returned_rate": _ratio(int(returned or 0), int(resolved or 0)),
        })
    return out
