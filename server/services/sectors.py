"""Loading a validated sector file as a new version of the sector set."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from geoalchemy2.shape import from_shape
from sqlalchemy import func, select

from geo import ValidationReport, geodesic_area_m2, read_sector_file
from server.extensions import db
from server.models import Sector, SectorSet, Unit
from server.services.errors import Unprocessable


def validate_file(path: str | Path) -> ValidationReport:
    """Read and validate a sector file (raises geo.SectorFileError on structural errors)."""
    return read_sector_file(path)


def load_sector_set(path: str | Path, now: datetime, loaded_by: str | None = None) -> SectorSet:
    """Store the file's sectors as the next version; units are found or created by code.

    Earlier versions stay in place, so appeals keep the sector they were routed to.
    Refuses a file with validation errors (overlaps, invalid rings, ...).
    """
    path = Path(path)
    report = read_sector_file(path)
    if not report.ok:
        raise Unprocessable("invalid_sector_file", field="file", errors="; ".join(report.errors))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    version = (db.session.execute(select(func.max(SectorSet.version))).scalar() or 0) + 1
    sector_set = SectorSet(version=version, source=path.name, sha256=digest, loaded_at=now, loaded_by=loaded_by)
    db.session.add(sector_set)
    db.session.flush()
    for feature in report.sectors:
        unit = db.session.scalar(select(Unit).where(Unit.code == feature.unit))
        if unit is None:
            unit = Unit(
                code=feature.unit,
                name_kk=feature.names["kk"],
                name_ru=feature.names["ru"],
                name_en=feature.names["en"],
                created_at=now,
            )
            db.session.add(unit)
            db.session.flush()
        db.session.add(
            Sector(
                version=version,
                code=feature.code,
                name_kk=feature.names["kk"],
                name_ru=feature.names["ru"],
                name_en=feature.names["en"],
                unit_id=unit.id,
                area_m2=geodesic_area_m2(feature.geometry),
                geom=from_shape(feature.geometry, srid=4326),
            )
        )
    db.session.flush()
    return sector_set
