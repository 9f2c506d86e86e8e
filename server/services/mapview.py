"""The dispatcher map's data: open appeals in a box, in a compact payload, and per-sector counters.

With 10,000 open appeals the map must stay smooth, so rows are arrays (no repeated
keys) and only what a marker needs is sent; details come from GET /appeals/<id>.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from server import geosql
from server.extensions import db
from server.models import OPEN_STATUSES, Appeal, AppealEvent, Sector, Staff
from server.services import appeals as appeal_service
from server.services import routing, sla

FIELDS = ["id", "lon", "lat", "status", "type", "topic", "sector", "sla", "assignee_id", "reg_no"]
REFLECTED_WINDOW = 300  # = LOOKBACK in pwa/shared/js/live.js: the ids a first catch-up looks at again


def sla_state(created_at: datetime, due_at: datetime | None, now: datetime, at_risk_share: float) -> str:
    """``on_time``, ``at_risk`` (the given share of the time used) or ``breached``; ``none`` without a deadline."""
    return sla.state_at(created_at, due_at, now, at_risk_share)


def open_appeals(viewer: Staff, now: datetime, *, bbox: str | None = None, **filters) -> dict:
    """Open appeals ``viewer`` may see, as ``{"fields": [...], "rows": [[...]]}``."""
    share = current_app.config.get("JAUAP_AT_RISK_SHARE", 0.75)
    statuses = filters.pop("status", None) or ",".join(OPEN_STATUSES)
    query = appeal_service.list_query(viewer, status=statuses, bbox=bbox, **filters)
    query = query.where(Appeal.location.is_not(None)).order_by(Appeal.id)
    sector_codes = {s.id: s.code for s in db.session.scalars(select(Sector))}
    # The newest event ids BEFORE the rows, in one statement: the map takes the events listed here as shown.
    # One committed between the two reads (PostgreSQL gives each statement its own view) is then newer than
    # the snapshot or missing from this list - and one that took a lower id but commits later (ids come from
    # a sequence) is missing from it too, so the page's first catch-up shows it instead of taking it as shown.
    newest = select(func.max(AppealEvent.id) - REFLECTED_WINDOW).scalar_subquery()
    reflected = list(db.session.scalars(select(AppealEvent.id).where(AppealEvent.id > func.coalesce(newest, 0))
                                        .order_by(AppealEvent.id)))
    last_event = reflected[-1] if reflected else 0
    rows = []
    for appeal in db.session.scalars(query):
        point = geosql.lonlat(appeal.location)
        rows.append([appeal.id, round(point[0], 6), round(point[1], 6), appeal.status, appeal.type,
                     appeal.topic_code, sector_codes.get(appeal.sector_id),
                     sla.stored_or_computed(sla.cycle_start(appeal), appeal.due_at, appeal.sla_state,
                                            appeal.paused_at, now, share), appeal.assignee_id, appeal.reg_no])
    return {"fields": FIELDS, "rows": rows, "last_event_id": last_event, "reflected_event_ids": reflected}


def sector_counters(viewer: Staff, now: datetime) -> list[dict]:
    """Per current sector: open, unassigned, at risk and breached appeals (``none`` for unrouted)."""
    share = current_app.config.get("JAUAP_AT_RISK_SHARE", 0.75)
    codes = {s.id: s.code for s in db.session.scalars(select(Sector))}
    counts: dict[str, dict] = {s.code: {"sector": s.code, "name": s.name_en, "open": 0, "unassigned": 0,
                                        "at_risk": 0, "breached": 0} for s in routing.current_sectors()}
    counts["none"] = {"sector": None, "name": "unrouted", "open": 0, "unassigned": 0, "at_risk": 0, "breached": 0}
    query = select(Appeal.sector_id, Appeal.assignee_id, sla.cycle_start_column(), Appeal.due_at, Appeal.sla_state,
                   Appeal.paused_at).where(Appeal.status.in_(OPEN_STATUSES), appeal_service.visibility(viewer))
    for sector_id, assignee_id, created_at, due_at, stored, paused_at in db.session.execute(query):
        row = counts.setdefault(codes.get(sector_id, "none"), {"sector": codes.get(sector_id), "name": "",
                                                              "open": 0, "unassigned": 0, "at_risk": 0,
                                                              "breached": 0})
        row["open"] += 1
        row["unassigned"] += assignee_id is None
        state = sla.stored_or_computed(created_at, due_at, stored, paused_at, now, share)
        row["at_risk"] += state == "at_risk"
        row["breached"] += state == "breached"
    return list(counts.values())
