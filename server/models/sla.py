"""SLA regulation: the admin-editable deadline policies and the calendar overrides."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db
from server.models.types import UTCDateTime, utcnow

SLA_MODES = ("working_days", "hours", "none")
CALENDAR_KINDS = ("working", "day_off")


class SlaPolicy(db.Model):
    """The deadline for appeals of one type, optionally narrowed to a topic and/or an urgency.

    ``topic_code`` and ``urgency`` are ``""`` for "any" (not NULL, so the unique
    constraint holds on PostgreSQL too); the most specific row wins.
    """

    __tablename__ = "sla_policy"
    __table_args__ = (
        UniqueConstraint("appeal_type", "topic_code", "urgency", name="uq_sla_policy_key"),
        CheckConstraint("mode IN ('working_days', 'hours', 'none')", name="mode"),
        CheckConstraint("mode = 'none' OR (amount IS NOT NULL AND amount > 0)", name="amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appeal_type: Mapped[str] = mapped_column(String(16))
    topic_code: Mapped[str] = mapped_column(String(32), default="")
    urgency: Mapped[str] = mapped_column(String(16), default="")
    mode: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarOverride(db.Model):
    """A day whose working status differs from the weekday + public-holiday rule (government transfers)."""

    __tablename__ = "calendar_override"
    __table_args__ = (CheckConstraint("kind IN ('working', 'day_off')", name="kind"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(200), default="")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
