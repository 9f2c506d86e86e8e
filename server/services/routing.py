"""Routing: which sector (and so which unit) an appeal belongs to.

The in-memory :class:`geo.SectorIndex` answers for the current sector set; it
is rebuilt when a new set is loaded (the version is checked on every call, so
a ``flask sectors load`` in another process takes effect at once).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select

from geo import SectorIndex
from server import geosql
from server.extensions import db
from server.models import Appeal, Sector, SectorSet
from server.services.errors import Unprocessable
from server.services.lifecycle import SYSTEM, Actor, transition

_lock = threading.Lock()


@dataclass(frozen=True)
class Location:
    """Where a point falls: the sector row, and how it was decided (covers / nearest)."""

    sector: Sector
    method: str
    distance_m: float


def current_version() -> int | None:
    """The version of the sector set in force, or None before any was loaded."""
    return db.session.execute(select(func.max(SectorSet.version))).scalar()


def current_sectors() -> list[Sector]:
    """The sectors of the current set, ordered by code."""
    version = current_version()
    if version is None:
        return []
    query = select(Sector).where(Sector.version == version).order_by(geosql.by_code(Sector.code))
    return list(db.session.scalars(query))


def sector_index() -> tuple[SectorIndex | None, dict[str, int]]:
    """The cached index of the current set and its code -> sector id map."""
    version = current_version()
    cache = current_app.extensions.setdefault("jauap_sector_index", {})
    key = (str(db.engine.url), version)
    hit = cache.get(key)
    if hit is not None:
        return hit
    with _lock:
        if key in cache:
            return cache[key]
        sectors = current_sectors()
        if not sectors:
            built = (None, {})
        else:
            index = SectorIndex(
                [(s.code, to_shape(s.geom)) for s in sectors],
                tolerance_m=current_app.config["JAUAP_SECTOR_TOLERANCE_M"],
            )
            built = (index, {s.code: s.id for s in sectors})
        cache.clear()  # only the newest version is ever needed
        cache[key] = built
        return built


def locate(lon: float, lat: float) -> Location | None:
    """The sector covering (lon, lat), the nearest one within tolerance, or None."""
    index, ids = sector_index()
    if index is None:
        return None
    match = index.lookup(lon, lat)
    if match is None:
        return None
    return Location(sector=db.session.get(Sector, ids[match.code]), method=match.method, distance_m=match.distance_m)


def route_appeal(appeal: Appeal, location: Location | None, now: datetime, actor: Actor = SYSTEM):
    """Route a just-registered appeal to its sector's unit, or to the unrouted queue."""
    if location is None:
        appeal.route_method = "none"
        return transition(appeal, "unroute", actor, now, data={"reason_code": "no_sector"})
    appeal.sector_id = location.sector.id
    appeal.unit_id = location.sector.unit_id
    appeal.route_method = location.method
    appeal.route_distance_m = round(location.distance_m, 1)
    return transition(
        appeal,
        "route",
        actor,
        now,
        data={
            "sector": location.sector.code,
            "sector_version": location.sector.version,
            "method": location.method,
            "distance_m": round(location.distance_m, 1),
        },
    )


def route_manually(appeal: Appeal, sector_code: str, actor: Actor, now: datetime):
    """A dispatcher puts an appeal into a sector of the current set by hand."""
    version = current_version()
    sector = db.session.scalar(select(Sector).where(Sector.version == version, Sector.code == sector_code))
    if sector is None:
        raise Unprocessable("unknown_sector", field="sector", sector=sector_code)
    event = transition(appeal, "route_manually", actor, now, data={"sector": sector.code, "method": "manual"})
    appeal.sector_id = sector.id
    appeal.unit_id = sector.unit_id
    appeal.route_method = "manual"
    appeal.route_distance_m = None
    return event
