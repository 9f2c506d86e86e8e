"""Photo evidence: the assignee's before/after photos of an appeal, verified, stored and served by role.

Adding a photo: the same replay rule as field steps (one action per client UUID),
then the cheap checks (may this person add this kind of photo now?), then the slow
part outside any transaction (hash, decode, re-encode: ``server.media``), then the
files (atomically, content-addressed), and last the Attachment row with its
``appeal.photo_added`` event in one transaction. An error anywhere before the
commit leaves no row; files without a row are harmless (see ``media.store``).

Who may fetch what: everyone who may see the appeal sees its photos' ``thumb`` and
``large`` (re-encoded, no metadata). The ``original`` keeps the camera's EXIF, GPS
included, so it - and the EXIF coordinates in the photo JSON - go only to the
centre's checkers (inspector, QC analyst, who judge the evidence), the dispatcher,
the unit head (whose unit the appeal is in) and the person who took it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from geo import geodesic_distance_m
from server import geosql, media
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, Staff
from server.services import appeals as appeal_service
from server.services import field, replay
from server.services.errors import Forbidden, NotFound, ServiceError
from server.services.lifecycle import Actor, record_event

# The statuses in which the assignee may add each kind of photo.
KIND_STATUSES = {"before": ("accepted", "en_route", "on_site"), "after": ("on_site",)}
ORIGINAL_ROLES = frozenset({"inspector", "qc_analyst", "dispatcher", "unit_head"})
VARIANTS = ("thumb", "large", "original")


class UploadRefused(ServiceError):
    """The upload itself is unacceptable (type, size, pixels, corruption, trailer, hash)."""

    def __init__(self, error: media.MediaError):
        super().__init__(error.code, field="file", **error.params)
        self.status = error.status


@dataclass(frozen=True)
class PhotoMeta:
    """The form fields that came with a photo."""

    kind: str
    sha256: str
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    device_time: datetime | None = None


def media_root() -> Path:
    """Where photos are stored: ``<instance>/media`` (outside every served folder)."""
    return Path(current_app.instance_path) / "media"


def photo_fingerprint(appeal_id: int, staff: Staff, meta: PhotoMeta) -> str:
    """The request hash of an upload for replay (the bytes are covered by their verified SHA-256)."""
    return replay.fingerprint(op="photo", appeal_id=appeal_id, staff_id=staff.id, kind=meta.kind,
                              sha256=meta.sha256, lat=meta.lat, lon=meta.lon, accuracy_m=meta.accuracy_m,
                              device_time=meta.device_time.isoformat() if meta.device_time else None)


def add_photo(appeal_id: int, staff: Staff, data: bytes, meta: PhotoMeta, now: datetime, *,
              client_uuid: str | None, serialise: Callable[[Attachment], dict]) -> replay.Outcome:
    """Add one verified photo to an appeal as its assignee; 201 (200 on a replay) with ``serialise(photo)``.

    Flushes, the caller commits and publishes ``outcome.events``.
    """
    request_hash = photo_fingerprint(appeal_id, staff, meta)
    if client_uuid is not None and (prior := replay.lookup(client_uuid, request_hash)) is not None:
        return prior  # before any image work: a replayed upload costs one query
    appeal = field.load_appeal(appeal_id, staff)
    field.ensure_still_yours(appeal, staff, KIND_STATUSES[meta.kind])
    # End this transaction before the slow part: nothing was written, and on SQLite every transaction
    # holds the database's write lock (BEGIN IMMEDIATE), on PostgreSQL a pooled connection.
    db.session.commit()
    tz = ZoneInfo(current_app.config["JAUAP_TIMEZONE"])
    try:
        processed = media.process_upload(data, meta.sha256, tz)
    except media.MediaError as exc:
        raise UploadRefused(exc) from None
    # Files first, atomically; the row that makes them visible comes after (media.store).
    media.store(media_root(), processed)

    def work() -> replay.Outcome:
        current = field.load_appeal(appeal_id, staff)  # re-read under the row lock
        field.ensure_still_yours(current, staff, KIND_STATUSES[meta.kind])
        photo, event = _attach(current, staff, processed.facts, meta, now)
        return replay.Outcome(status=201, body=serialise(photo), events=[event])

    return replay.perform_once(client_uuid, staff, appeal_id, request_hash, work, now)


def _attach(appeal: Appeal, staff: Staff, facts: media.ImageFacts, meta: PhotoMeta,
            now: datetime) -> tuple[Attachment, AppealEvent]:
    point = geosql.lonlat(appeal.location)
    distance = None
    if point is not None and facts.exif_lat is not None and facts.exif_lon is not None:
        distance = round(geodesic_distance_m(facts.exif_lon, facts.exif_lat, point[0], point[1]), 1)
    photo = Attachment(
        public_id=secrets.token_urlsafe(16), appeal_id=appeal.id, kind=meta.kind, sha256=facts.sha256,
        mime=facts.mime, size_bytes=facts.size_bytes, width=facts.width, height=facts.height,
        device_lat=meta.lat, device_lon=meta.lon, device_accuracy_m=meta.accuracy_m, device_time=meta.device_time,
        exif_lat=facts.exif_lat, exif_lon=facts.exif_lon, exif_time=facts.exif_time, exif_distance_m=distance,
        uploaded_by_id=staff.id, created_at=now,
    )
    db.session.add(photo)
    db.session.flush()
    appeal.updated_at = now
    # No status change: the event exists so the dispatcher's map and the history show the photo live.
    event = record_event(appeal, "appeal.photo_added", Actor.of(staff), now, from_status=appeal.status,
                         to_status=appeal.status,
                         data={"photo": photo.public_id, "kind": meta.kind, "exif_distance_m": distance})
    return photo, event


def list_photos(appeal: Appeal) -> list[Attachment]:
    """The appeal's photos, oldest first."""
    return list(db.session.scalars(select(Attachment).where(Attachment.appeal_id == appeal.id)
                                   .order_by(Attachment.id)))


def may_see_original(photo: Attachment, viewer: Staff) -> bool:
    """Whether ``viewer`` may have the original file and its EXIF position (see the module docstring)."""
    return viewer.role in ORIGINAL_ROLES or photo.uploaded_by_id == viewer.id


def get_photo(public_id: str, viewer: Staff) -> Attachment:
    """The photo if ``viewer`` may see its appeal; NotFound otherwise (existence does not leak)."""
    row = db.session.execute(
        select(Attachment).join(Appeal, Appeal.id == Attachment.appeal_id)
        .where(Attachment.public_id == public_id, appeal_service.visibility(viewer))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("photo_not_found")
    return row


def photo_file(public_id: str, variant: str, viewer: Staff) -> tuple[Path, str]:
    """The file and MIME type of one variant of a photo ``viewer`` may fetch."""
    if variant not in VARIANTS:
        raise NotFound("photo_not_found")
    photo = get_photo(public_id, viewer)
    if variant == "original":
        if not may_see_original(photo, viewer):
            raise Forbidden("original_restricted")
        return media.original_path(media_root(), photo.sha256), photo.mime
    return media.derived_path(media_root(), photo.sha256, variant), "image/jpeg"
