"""Field evidence: photos attached to an appeal, and the field app's replayed actions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.staff import Staff
from server.models.types import UTCDateTime, utcnow

PHOTO_KINDS = ("before", "after", "citizen")


class Attachment(db.Model):
    """One photo of an appeal.

    The original is stored once, immutable and content-addressed by ``sha256``
    outside any public folder; ``public_id`` (random, unguessable) is the only
    handle clients see. Derivatives (``large``, ``thumb``) are re-encoded
    without metadata. EXIF GPS and time are copied here from the original,
    with their distance from the appeal point.
    """

    __tablename__ = "attachment"
    __table_args__ = (
        CheckConstraint("kind IN ('before', 'after', 'citizen')", name="kind"),
        Index("ix_attachment_appeal_kind", "appeal_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id"))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Where the uploader said they were (device fix) when the photo was sent.
    device_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    device_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    device_accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    device_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the photo itself says (EXIF), and how far that is from the appeal point.
    exif_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    exif_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    exif_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exif_distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    uploaded_by: Mapped[Staff | None] = relationship()


class ClientAction(db.Model):
    """A field-app action accepted once under its client UUID, with the answer given.

    A repeat of the same UUID (the offline outbox replaying, a retry after a lost
    reply) gets the stored answer instead of acting twice; the same UUID with a
    different request is refused.
    """

    __tablename__ = "client_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_uuid: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeal.id"), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
