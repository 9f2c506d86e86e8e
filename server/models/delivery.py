"""Deliveries are data: Web Push subscriptions and the outbox of messages to send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.staff import Staff
from server.models.types import UTCDateTime, utcnow

OUTBOX_STATES = ("pending", "sending", "sent", "dead")


class PushSubscription(db.Model):
    """One device's Web Push subscription (endpoint + keys), owned by a staff member.

    ``token_id`` ties it to the login session that created it, so logging out
    of that device removes the device's subscription and nothing else.
    """

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    staff: Mapped[Staff] = relationship()


class OutboundMessage(db.Model):
    """One message waiting to leave Jauap (a push now; channel replies later).

    Written in the same transaction as the change that causes it; the outbox
    worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them
    and records the outcome, retrying with backoff (send-state columns after
    mySociety's FixMyStreet).
    """

    __tablename__ = "outbound_message"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sending', 'sent', 'dead')", name="state"),
        Index("ix_outbound_message_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # webpush | telegram | whatsapp | meta | sms
    # Idempotence of enqueueing: the same cause never queues the same message twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True, nullable=True)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_subscription.id", ondelete="CASCADE"), nullable=True, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeal.id"), nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A claimed row whose lease ran out (a worker died mid-send) is claimed again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
