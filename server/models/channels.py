"""Citizen channels: inbound updates (deduplicated), guided conversations, media to fetch,
Open311 API keys, reply templates and the citizen's feedback on a fix."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db
from server.models.types import UTCDateTime, utcnow

INBOUND_CHANNELS = ("telegram", "whatsapp", "instagram", "facebook")


class InboundUpdate(db.Model):
    """One provider message or update, recorded once: a redelivery finds it and changes nothing."""

    __tablename__ = "inbound_update"
    __table_args__ = (UniqueConstraint("channel", "provider_id", name="uq_inbound_update_channel_provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str | None] = mapped_column(String(128), nullable=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeal.id"), nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Conversation(db.Model):
    """A guided chat with a citizen on one channel: where they are in the form, and what they gave."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "handle", name="uq_conversation_channel_handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    handle: Mapped[str] = mapped_column(String(128))  # chat id / phone / page-scoped id
    step: Mapped[str] = mapped_column(String(32), default="language")
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MediaFetch(db.Model):
    """A photo a citizen sent through a channel, fetched from the provider by the worker (never in the webhook)."""

    __tablename__ = "media_fetch"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sending', 'sent', 'dead')", name="state"),
        Index("ix_media_fetch_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    media_ref: Mapped[str] = mapped_column(String(512))  # provider file/media id or attachment URL
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"),
                                                        nullable=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeal.id"), nullable=True, index=True)
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachment.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(db.Model):
    """An Open311 client's key (only its SHA-256 is stored), managed by admins."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReplyTemplate(db.Model):
    """The text a citizen receives at one moment (registered, assigned, resolved, extended, answered),
    per appeal type (or any type when ``appeal_type`` is '*') and language; edited by the methodologist."""

    __tablename__ = "reply_template"
    __table_args__ = (UniqueConstraint("moment", "appeal_type", "language", name="uq_reply_template_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    moment: Mapped[str] = mapped_column(String(32))
    appeal_type: Mapped[str] = mapped_column(String(16), default="*")
    language: Mapped[str] = mapped_column(String(2))
    body: Mapped[str] = mapped_column(Text)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Feedback(db.Model):
    """The citizen's verdict on a fix: confirm or dispute, a 1-5 rating, a comment."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("verdict IN ('confirm', 'dispute')", name="verdict"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(8))
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
