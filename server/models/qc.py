"""Quality control: the call-back sample of closed appeals and what the citizen said."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.appeal import Appeal
from server.models.types import UTCDateTime


class CallbackSample(db.Model):
    """One closed appeal drawn for the QC analyst to call back, and the outcome once recorded."""

    __tablename__ = "qc_callback"
    __table_args__ = (
        UniqueConstraint("appeal_id", name="uq_qc_callback_appeal"),  # an appeal is called back at most once
        CheckConstraint("satisfied IS NULL OR (satisfied >= 1 AND satisfied <= 5)", name="satisfied"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id"))
    sampled_on: Mapped[date] = mapped_column(Date, index=True)  # the Almaty day of the draw
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seed: Mapped[str] = mapped_column(String(64))  # the draw can be repeated from it
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    reached: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    satisfied: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)

    appeal: Mapped[Appeal] = relationship()
