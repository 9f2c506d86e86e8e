"""Units, sectors and versioned sector sets."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.types import UTCDateTime, utcnow


class Unit(db.Model):
    """A sector's field unit, subordinate to the contact centre."""

    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def name(self, locale: str) -> str:
        """The unit's name in ``locale``."""
        return getattr(self, f"name_{locale}", None) or self.name_ru


class SectorSet(db.Model):
    """One loaded version of the city's sector file; the highest version is current."""

    __tablename__ = "sector_set"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    loaded_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class Sector(db.Model):
    """A sector polygon of one sector-set version. Appeals point at the row they were routed to."""

    __tablename__ = "sector"
    __table_args__ = (UniqueConstraint("version", "code", name="uq_sector_version_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(ForeignKey("sector_set.version"), index=True)
    code: Mapped[str] = mapped_column(String(16), index=True)
    name_kk: Mapped[str] = mapped_column(String(120))
    name_ru: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    area_m2: Mapped[float] = mapped_column(Float)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)

    unit: Mapped[Unit] = relationship(lazy="joined")

    def name(self, locale: str) -> str:
        """The sector's name in ``locale``."""
        return getattr(self, f"name_{locale}", None) or self.name_ru
