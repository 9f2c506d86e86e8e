"""Shifts, who is on duty, and where field staff are."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.staff import Staff
from server.models.types import UTCDateTime, utcnow


class Shift(db.Model):
    """One of the centre's four rotating shifts (the centre works around the clock)."""

    __tablename__ = "shift"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name_kk: Mapped[str] = mapped_column(String(80))
    name_ru: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    starts_at: Mapped[str] = mapped_column(String(5))  # local time HH:MM, Asia/Almaty
    hours: Mapped[int] = mapped_column(Integer, default=12)

    def name(self, locale: str) -> str:
        """The shift's name in ``locale``."""
        return getattr(self, f"name_{locale}", None) or self.name_ru


class StaffPosition(db.Model):
    """The latest reported position of a staff member's device (one row per person, for the map)."""

    __tablename__ = "staff_position"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True, autoincrement=False)
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    staff: Mapped[Staff] = relationship()


class PositionFix(db.Model):
    """Position history, kept for a configurable number of days (``flask worker`` purges older rows)."""

    __tablename__ = "position_fix"
    __table_args__ = (Index("ix_position_fix_staff_time", "staff_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
