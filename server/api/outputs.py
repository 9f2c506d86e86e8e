"""Response schemas and the functions that fill them (one place decides what leaves the server)."""

from __future__ import annotations

from datetime import datetime

from flask import url_for
from flask_babel import get_locale
from pydantic import BaseModel, RootModel

from server.models import Appeal, AppealEvent, Attachment, Sector, Staff
from server.models.types import utcnow
from server.services import appeals as appeal_service
from server.services import audit, evidence
from server.services import sla as sla_service
from server.services.intake import Similar, appeal_point
from server.services.lifecycle import Actor, allowed_actions


def locale() -> str:
    """The current request's language code (kk, ru or en)."""
    return str(get_locale() or "ru")


class SectorRef(BaseModel):
    """A sector as referenced from an appeal."""

    code: str
    name: str
    version: int


class CitizenOut(BaseModel):
    """The applicant's contact, shown only to roles that may see it."""

    name: str | None
    phone: str | None
    language: str


class EventOut(BaseModel):
    """One step of an appeal's history."""

    id: int
    kind: str
    from_status: str | None
    to_status: str | None
    actor_kind: str
    actor: str | None
    at: datetime
    data: dict


class SimilarOut(BaseModel):
    """A nearby open appeal of the same topic."""

    id: int
    reg_no: str
    status: str
    distance_m: float
    created_at: datetime


class PhotoExif(BaseModel):
    """What the photo's own EXIF says: where (only for roles that may have the original) and when."""

    lat: float | None
    lon: float | None
    time: datetime | None
    distance_m: float | None


class PhotoUrls(BaseModel):
    """Where to fetch each variant (``original`` is null for roles that may not have it)."""

    thumb: str
    large: str
    original: str | None


class PhotoOut(BaseModel):
    """One photo of an appeal."""

    id: str
    kind: str
    sha256: str
    mime: str
    width: int
    height: int
    created_at: datetime
    exif: PhotoExif | None
    urls: PhotoUrls


class PhotoList(RootModel[list[PhotoOut]]):
    """An appeal's photos, oldest first."""


class AppealOut(BaseModel):
    """An appeal as staff see it."""

    id: int
    reg_no: str
    type: str
    topic: str
    topic_name: str
    urgency: str | None
    description: str
    channel: str
    status: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    address: str | None
    sector: SectorRef | None
    route_method: str | None
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    sla: str = "none"  # on_time | at_risk | breached | met | none (services.sla.display_state)
    paused: bool = False  # the SLA clock is stopped while the appeal waits for the citizen
    answer: str | None
    citizen: CitizenOut | None
    actions: list[str]
    flagged: bool = False
    assigned_to_me: bool = False  # the field app shows the workflow buttons on its own assignments only
    history: list[EventOut] | None = None
    photos: list[PhotoOut] | None = None


class AppealCreated(AppealOut):
    """The answer to a create: the appeal, its tracking token and the duplicate suggestion."""

    tracking_token: str
    similar: list[SimilarOut]


class AppealPage(BaseModel):
    """A page of appeals."""

    items: list[AppealOut]
    total: int
    page: int
    per_page: int


class TopicOut(BaseModel):
    """A catalogue topic, named in the requester's language."""

    code: str
    name: str


class TopicList(RootModel[list[TopicOut]]):
    """The topic catalogue."""


class LookupOut(BaseModel):
    """Which sector covers a point."""

    sector: SectorRef | None
    method: str | None
    distance_m: float | None
    unit: str | None


class TokenOut(BaseModel):
    """A bearer token."""

    token: str
    expires_at: datetime
    role: str


class MeOut(BaseModel):
    """The logged-in staff member."""

    id: int
    username: str
    full_name: str
    role: str
    unit: str | None
    language: str
    on_duty: bool = False


class SessionOut(MeOut):
    """A browser session started by the JSON login (the field app): who, and until when."""

    expires_at: datetime


class GeoJSON(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946)."""

    type: str
    features: list[dict]


def sector_ref(sector: Sector | None) -> SectorRef | None:
    """A sector reference in the current language."""
    if sector is None:
        return None
    return SectorRef(code=sector.code, name=sector.name(locale()), version=sector.version)


def event_out(ev: AppealEvent) -> EventOut:
    """An event for staff eyes."""
    return EventOut(id=ev.id, kind=ev.kind, from_status=ev.from_status, to_status=ev.to_status,
                    actor_kind=ev.actor_kind, actor=ev.actor.username if ev.actor else None, at=ev.created_at,
                    data=ev.data or {})


def photo_out(photo: Attachment, viewer: Staff) -> dict:
    """Serialise a photo for ``viewer``: the EXIF position and the original only where the role may have them."""
    full = evidence.may_see_original(photo, viewer)
    exif = None
    if photo.exif_time is not None or photo.exif_lat is not None:
        exif = PhotoExif(lat=photo.exif_lat if full else None, lon=photo.exif_lon if full else None,
                         time=photo.exif_time, distance_m=photo.exif_distance_m)

    def url(variant: str) -> str:
        return url_for("api.get_photo", public_id=photo.public_id, variant=variant)

    return PhotoOut(id=photo.public_id, kind=photo.kind, sha256=photo.sha256, mime=photo.mime, width=photo.width,
                    height=photo.height, created_at=photo.created_at, exif=exif,
                    urls=PhotoUrls(thumb=url("thumb"), large=url("large"),
                                   original=url("original") if full else None)).model_dump(mode="json")


def appeal_out(appeal: Appeal, viewer: Staff, *, with_history: bool = False, cls=AppealOut, **extra):
    """Serialise an appeal for ``viewer``: contact fields only where the role may see them.

    ``with_history`` (the single-appeal views) adds the history and the photos.
    """
    point = appeal_point(appeal)
    citizen = None
    if appeal.citizen is not None and appeal_service.can_see_contact(appeal, viewer):
        citizen = CitizenOut(name=appeal.citizen.name, phone=appeal.citizen.phone, language=appeal.citizen.language)
        audit.note_contact_view(appeal.id, viewer, utcnow())  # every contact served is audited
    history = [event_out(e) for e in appeal_service.history(appeal)] if with_history else None
    photos = [photo_out(p, viewer) for p in evidence.list_photos(appeal)] if with_history else None
    return cls(
        id=appeal.id,
        reg_no=appeal.reg_no,
        type=appeal.type,
        topic=appeal.topic_code,
        topic_name=appeal.topic.name(locale()),
        urgency=appeal.urgency,
        description=appeal.description,
        channel=appeal.channel,
        status=appeal.status,
        lon=point[0] if point else None,
        lat=point[1] if point else None,
        accuracy_m=appeal.accuracy_m,
        address=appeal.address,
        sector=sector_ref(appeal.sector),
        route_method=appeal.route_method,
        created_at=appeal.created_at,
        updated_at=appeal.updated_at,
        due_at=appeal.due_at,
        sla=sla_service.display_state(appeal, utcnow()),
        paused=appeal.paused_at is not None,
        answer=appeal.answer_text,
        citizen=citizen,
        actions=allowed_actions(appeal, Actor.of(viewer)),
        flagged=appeal.flagged_at is not None,
        assigned_to_me=appeal.assignee_id == viewer.id,
        history=history,
        photos=photos,
        **extra,
    ).model_dump(mode="json")


def similar_out(items: list[Similar]) -> list[dict]:
    """The duplicate suggestion list."""
    return [SimilarOut(id=s.appeal.id, reg_no=s.appeal.reg_no, status=s.appeal.status,
                       distance_m=round(s.distance_m, 1), created_at=s.appeal.created_at).model_dump(mode="json")
            for s in items]


class PushKeyOut(BaseModel):
    """The VAPID public key for ``PushManager.subscribe({applicationServerKey})``."""

    public_key: str


class PushSubscriptionOut(BaseModel):
    """A saved push subscription (the endpoint echoed; keys never leave the server again)."""

    endpoint: str
    created_at: datetime
