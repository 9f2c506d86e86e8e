"""Intake: one appeal in, from any channel, as a pipeline of named steps.

normalise -> check topic -> locate -> SLA due time -> registration number ->
store appeal + ``appeal.registered`` -> route (``appeal.routed`` / ``appeal.unrouted``).

Idempotent on the client's key: the same key and body return the first
appeal; the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from geo import geodesic_distance_m
from server import geosql
from server.extensions import db
from server.models import OPEN_STATUSES, Appeal, AppealEvent, Citizen, Topic
from server.schemas import AppealIn
from server.services import dispatch, routing, sla
from server.services.calendar import local_year
from server.services.errors import Unprocessable
from server.services.lifecycle import Actor, record_event
from server.services.numbering import allocate_reg_no


@dataclass
class Similar:
    """An open appeal of the same topic near the new one (the duplicate suggestion)."""

    appeal: Appeal
    distance_m: float


@dataclass
class IntakeResult:
    """What intake did: the appeal, whether it is new, the events written, nearby look-alikes."""

    appeal: Appeal
    created: bool
    events: list[AppealEvent] = field(default_factory=list)
    similar: list[Similar] = field(default_factory=list)


def fingerprint(data: AppealIn) -> str:
    """A stable hash of the validated request, to tell a retry from a different request."""
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def register_appeal(
    data: AppealIn,
    *,
    actor: Actor,
    now: datetime,
    idempotency_key: str | None = None,
) -> IntakeResult:
    """Register, locate and route one appeal; flushes, the caller commits."""
    request_hash = fingerprint(data)
    if idempotency_key:
        existing = _by_key(idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash)
    topic = _check_topic(data.topic)
    location = routing.locate(data.lon, data.lat) if data.lat is not None else None
    due = sla.due_at(data.type, topic.code, data.urgency, now)
    # Look-alikes are found before storing: the registration number's lock is held from
    # allocation to commit, so nothing that can run earlier should run inside it.
    similar = find_similar_at(data.lon, data.lat, topic.code) if data.lat is not None else []
    try:
        with db.session.begin_nested():
            appeal, events = _store(data, topic, location, due, actor, now, idempotency_key, request_hash)
    except IntegrityError:
        # Another request with the same key committed first: answer as a retry would be.
        existing = _by_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request_hash)
    return IntakeResult(appeal=appeal, created=True, events=events, similar=similar)


def _by_key(key: str) -> Appeal | None:
    return db.session.scalar(select(Appeal).where(Appeal.idempotency_key == key))


def _replay(existing: Appeal, request_hash: str) -> IntakeResult:
    if existing.request_hash != request_hash:
        raise Unprocessable("idempotency_key_reused", field="Idempotency-Key")
    return IntakeResult(appeal=existing, created=False, similar=find_similar(existing))


def _check_topic(code: str) -> Topic:
    topic = db.session.get(Topic, code)
    if topic is None or not topic.active:
        raise Unprocessable("unknown_topic", field="topic", topic=code)
    return topic


def _citizen(data: AppealIn, now: datetime) -> Citizen | None:
    person = data.citizen
    if person is None or not (person.name or person.phone):
        return None
    handle = person.phone if data.channel == "phone" else None
    # Two calls from one number can arrive at once: insert in a savepoint, and on a unique clash
    # take the row the other request committed.
    for _attempt in range(3):
        if handle:
            found = db.session.scalar(
                select(Citizen).where(Citizen.channel == data.channel, Citizen.handle == handle)
            )
            if found is not None:
                if person.name:
                    found.name = person.name
                found.language = person.language
                return found
        citizen = Citizen(channel=data.channel, handle=handle, name=person.name, phone=person.phone,
                          language=person.language, created_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(citizen)
                db.session.flush()
        except IntegrityError:
            continue
        return citizen
    raise Unprocessable("citizen_conflict", field="citizen")


def _store(data, topic, location, due, actor, now, idempotency_key, request_hash):
    citizen = _citizen(data, now)
    appeal = Appeal(
        tracking_token=secrets.token_urlsafe(24),
        type=data.type,
        topic_code=topic.code,
        urgency=data.urgency if data.type == "incident" else None,
        description=data.description,
        channel=data.channel,
        citizen=citizen,
        location=geosql.point(data.lon, data.lat) if data.lat is not None else None,
        accuracy_m=data.accuracy_m,
        address=data.address,
        status="registered",
        created_at=now,
        updated_at=now,
        due_at=due,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_by_id=actor.staff_id,
    )
    # The number is taken last: its counter row stays locked until commit, so keep that short.
    appeal.reg_no = allocate_reg_no(current_app.config["JAUAP_REG_PREFIX"], local_year(now))
    db.session.add(appeal)
    db.session.flush()
    registered = record_event(
        appeal,
        "appeal.registered",
        actor,
        now,
        to_status="registered",
        data={"reg_no": appeal.reg_no, "type": appeal.type, "topic": appeal.topic_code, "channel": appeal.channel},
    )
    routed = routing.route_appeal(appeal, location, now)
    events = [registered, routed]
    assigned = dispatch.auto_assign(appeal, now)
    if assigned is not None:
        events.append(assigned)
    return appeal, events


def appeal_point(appeal: Appeal) -> tuple[float, float] | None:
    """The appeal's (lon, lat), or None."""
    return geosql.lonlat(appeal.location)


def find_similar(appeal: Appeal, limit: int = 10) -> list[Similar]:
    """Open appeals of the same topic within the similarity radius (default 50 m), nearest first."""
    point = appeal_point(appeal)
    if point is None:
        return []
    return find_similar_at(point[0], point[1], appeal.topic_code, exclude_id=appeal.id, limit=limit)


def find_similar_at(lon: float, lat: float, topic: str, *, exclude_id: int | None = None,
                    limit: int = 10) -> list[Similar]:
    """Open appeals of ``topic`` within the similarity radius of (lon, lat), nearest first."""
    point = (lon, lat)
    radius = current_app.config["JAUAP_SIMILAR_RADIUS_M"]
    rows = db.session.scalars(
        select(Appeal).where(
            Appeal.topic_code == topic,
            Appeal.status.in_(OPEN_STATUSES),
            Appeal.id != (exclude_id or 0),
            Appeal.location.is_not(None),
            geosql.within_m(Appeal.location, point[0], point[1], radius),
        )
    ).all()
    found = []
    for other in rows:
        other_point = appeal_point(other)
        found.append(Similar(other, geodesic_distance_m(point[0], point[1], other_point[0], other_point[1])))
    found.sort(key=lambda s: (s.distance_m, s.appeal.id))
    return found[:limit]
