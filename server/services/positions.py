"""Staff device positions: the latest for the map, a history kept for a set number of days."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from server import geosql
from server.extensions import db
from server.models import PositionFix, Staff, StaffPosition
from server.schemas import PositionIn
from server.services.errors import ServiceError, Unprocessable


class TooFrequent(ServiceError):
    """A position came sooner than the minimum interval."""

    status = 429


def _device_time(value: str | None, now: datetime) -> datetime:
    if not value:
        return now
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable("bad_timestamp", field="recorded_at") from None
    if moment.tzinfo is None:
        raise Unprocessable("bad_timestamp", field="recorded_at")
    # A device clock far in the future is wrong; keep the server's receipt time instead.
    return min(moment, now + timedelta(minutes=5))


def report_position(staff_id: int, data: PositionIn, now: datetime) -> StaffPosition:
    """Store a report: refuse it if it follows the previous one too closely (per-person rate limit)."""
    interval = current_app.config["JAUAP_POSITION_MIN_INTERVAL_S"]
    latest = db.session.get(StaffPosition, staff_id)
    if latest is not None and (now - latest.received_at).total_seconds() < interval:
        raise TooFrequent("position_too_frequent", field="recorded_at", seconds=int(interval))
    recorded = _device_time(data.recorded_at, now)
    if latest is None:
        latest = StaffPosition(staff_id=staff_id)
        db.session.add(latest)
    latest.location = geosql.point(data.lon, data.lat)
    latest.lon, latest.lat, latest.accuracy_m = data.lon, data.lat, data.accuracy_m
    latest.recorded_at, latest.received_at = recorded, now
    db.session.add(PositionFix(staff_id=staff_id, lon=data.lon, lat=data.lat, accuracy_m=data.accuracy_m,
                               recorded_at=recorded, received_at=now))
    db.session.flush()
    return latest


def latest_positions(unit_id: int | None, now: datetime) -> list[dict]:
    """The last position of each unit staff member (all units when ``unit_id`` is None), with staleness."""
    stale_after = timedelta(minutes=current_app.config["JAUAP_POSITION_STALE_MIN"])
    query = select(StaffPosition, Staff).join(Staff, Staff.id == StaffPosition.staff_id).where(Staff.active.is_(True))
    if unit_id is not None:
        query = query.where(Staff.unit_id == unit_id)
    out = []
    for pos, staff in db.session.execute(query):
        out.append({"staff_id": staff.id, "name": staff.full_name or staff.username, "role": staff.role,
                    "unit": staff.unit.code if staff.unit else None, "on_duty": staff.on_duty,
                    "lon": pos.lon, "lat": pos.lat, "accuracy_m": pos.accuracy_m,
                    "recorded_at": pos.recorded_at.isoformat(), "stale": now - pos.received_at > stale_after})
    return out


def purge_history(now: datetime) -> int:
    """Delete position history older than the retention period; returns rows removed."""
    cutoff = now - timedelta(days=current_app.config["JAUAP_POSITION_RETENTION_DAYS"])
    result = db.session.execute(delete(PositionFix).where(PositionFix.received_at < cutoff))
    return result.rowcount or 0
