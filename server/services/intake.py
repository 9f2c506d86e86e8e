"""Intake: one appeal in, from any channel, as a pipeline of named steps.

normalise -> check topic -> locate -> SLA due time -> look-alikes -> citizen ->
store appeal + ``appeal.registered`` -> route (``appeal.routed`` / ``appeal.unrouted``) ->
assign -> registration number (last: its counter row is locked until commit).

Idempotent on the client's key: the same key and body return the first
appeal; the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from geo import geodesic_distance_m
from server import geosql
from server.extensions import db
from server.models import OPEN_STATUSES, Appeal, AppealEvent, Citizen, Topic
from server.realtime import publish
from server.schemas import AppealIn
from server.services import dispatch, routing, sla
from server.services.calendar import local_year
from server.services.errors import Unprocessable
from server.services.lifecycle import Actor, record_event
from server.services.numbering import number_appeal, provisional_reg_no

TOPIC_CACHE_S = 30.0


@dataclass(frozen=True)
class SimilarAppeal:
    """The columns a duplicate suggestion shows, read once: not a live ORM object, so building the
    answer after commit does not reload every suggestion."""

    id: int
    reg_no: str
    status: str
    created_at: datetime


@dataclass
class Similar:
    """An open appeal of the same topic near the new one (the duplicate suggestion)."""

    appeal: SimilarAppeal
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
    topic_code = _check_topic(data.topic)
    location = routing.locate(data.lon, data.lat) if data.lat is not None else None
    due = sla.due_at(data.type, topic_code, data.urgency, now)
    similar = find_similar_at(data.lon, data.lat, topic_code) if data.lat is not None else []
    citizen_id = _upsert_citizen(data, now)
    if location is not None:
        publish.prefetch_rooms(location.sector)
    try:
        with db.session.begin_nested():
            appeal, events = _store(data, topic_code, citizen_id, location, due, actor, now, idempotency_key,
                                    request_hash)
    except IntegrityError:
        # Another request with the same key committed first: answer as a retry would be.
        existing = _by_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request_hash)
    # The registration number comes last: its counter row stays locked from here to the commit
    # and concurrent intakes queue on it, so everything else (the look-ups above, storing,
    # routing, assigning) is done before it is taken.
    number_appeal(appeal, current_app.config["JAUAP_REG_PREFIX"], local_year(now))
    return IntakeResult(appeal=appeal, created=True, events=events, similar=similar)


def _by_key(key: str) -> Appeal | None:
    # The common answer is "no such key": ask for the id only, load the appeal on a hit.
    found = db.session.scalar(select(Appeal.id).where(Appeal.idempotency_key == key))
    return None if found is None else db.session.get(Appeal, found)


def _replay(existing: Appeal, request_hash: str) -> IntakeResult:
    if existing.request_hash != request_hash:
        raise Unprocessable("idempotency_key_reused", field="Idempotency-Key")
    return IntakeResult(appeal=existing, created=False, similar=find_similar(existing))


def _check_topic(code: str) -> str:
    if code not in _active_topics(refresh=False) and code not in _active_topics(refresh=True):
        raise Unprocessable("unknown_topic", field="topic", topic=code)
    return code


def _active_topics(*, refresh: bool) -> frozenset[str]:
    """The active topic codes, cached per app for TOPIC_CACHE_S (the catalogue changes only by migration).

    An unknown code always re-reads the table, so a topic switched on is accepted at once; one
    switched off is refused at most TOPIC_CACHE_S later.
    """
    cached = current_app.extensions.get("jauap_active_topics")
    if not refresh and cached is not None and cached[0] > time.monotonic():
        return cached[1]
    codes = frozenset(db.session.scalars(select(Topic.code).where(Topic.active.is_(True))))
    current_app.extensions["jauap_active_topics"] = (time.monotonic() + TOPIC_CACHE_S, codes)
    return codes


def _upsert_citizen(data: AppealIn, now: datetime) -> int | None:
    """The applicant's row id: one INSERT ... ON CONFLICT statement, created or refreshed."""
    person = data.citizen
    if person is None or not (person.name or person.phone):
        return None
    handle = person.phone if data.channel == "phone" else None
    values = {"channel": data.channel, "handle": handle, "name": person.name, "phone": person.phone,
              "language": person.language, "created_at": now}
    if handle is None:  # no channel id to recognise the person by: always a new row
        return db.session.execute(Citizen.__table__.insert().values(values).returning(Citizen.id)).scalar_one()
    # Two calls from one number can arrive at once: the upsert is atomic (the second waits on the
    # first's row), so it needs neither a look-up first nor a savepoint and retry.
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Citizen.__table__).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Citizen.channel, Citizen.handle],
        # a call without a name keeps the name we know
        set_={"name": func.coalesce(literal(person.name or None, Citizen.name.type), Citizen.name),
              "language": stmt.excluded.language},
    ).returning(Citizen.id)
    return db.session.execute(stmt).scalar_one()


def _store(data, topic_code, citizen_id, location, due, actor, now, idempotency_key, request_hash):
    appeal = Appeal(
        reg_no=provisional_reg_no(),  # replaced by the real number before the caller commits
        tracking_token=secrets.token_urlsafe(24),
        type=data.type,
        topic_code=topic_code,
        urgency=data.urgency if data.type == "incident" else None,
        description=data.description,
        channel=data.channel,
        citizen_id=citizen_id,
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
    db.session.add(appeal)
    db.session.flush()
    # No number in the event: it is not taken yet (see register_appeal); the appeal row has it.
    registered = record_event(
        appeal,
        "appeal.registered",
        actor,
        now,
        to_status="registered",
        data={"type": appeal.type, "topic": appeal.topic_code, "channel": appeal.channel},
    )
    routed = routing.route_appeal(appeal, location, now)
    if location is not None:
        # Hold the sector and unit rows already loaded: the live payloads read them, and the
        # session's identity map would otherwise have let them go and load them again.
        appeal.sector, appeal.unit = location.sector, location.sector.unit
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
    rows = db.session.execute(
        select(Appeal.id, Appeal.reg_no, Appeal.status, Appeal.created_at, Appeal.location).where(
            Appeal.topic_code == topic,
            Appeal.status.in_(OPEN_STATUSES),
            Appeal.id != (exclude_id or 0),
            Appeal.location.is_not(None),
            geosql.within_m(Appeal.location, point[0], point[1], radius),
        )
    ).all()
    found = []
    for row in rows:
        other_point = geosql.lonlat(row.location)
        found.append(Similar(SimilarAppeal(row.id, row.reg_no, row.status, row.created_at),
                             geodesic_distance_m(point[0], point[1], other_point[0], other_point[1])))
    found.sort(key=lambda s: (s.distance_m, s.appeal.id))
    return found[:limit]
