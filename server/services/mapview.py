"""The dispatcher map's data: open appeals in a box, in a compact payload, and per-sector counters.

With 10,000 open appeals the map must stay smooth, so rows are arrays (no repeated
keys) and only what a marker needs is sent; details come from GET /appeals/<id>.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import case, func, select

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
    # Only the marker's columns, the point's coordinates read by the database: loading whole Appeal objects
    # and parsing each geometry in Python made this the slowest read of a loaded centre (p95 219 ms).
    # Only an answered appeal can have been reopened: the others skip the per-row look-up of its last term.
    start = case((Appeal.answered_at.is_(None), Appeal.created_at), else_=sla.cycle_start_column())
    columns = query.with_only_columns(
        Appeal.id, func.ST_X(Appeal.location), func.ST_Y(Appeal.location), Appeal.status, Appeal.type,
        Appeal.topic_code, Appeal.sector_id, start, Appeal.due_at, Appeal.sla_state, Appeal.paused_at,
        Appeal.assignee_id, Appeal.reg_no)
    rows = [[appeal_id, round(lon, 6), round(lat, 6), status, appeal_type, topic, sector_codes.get(sector_id),
             sla.stored_or_computed(started, due, stored, paused_at, now, share), assignee_id,
             reg_no]
            for (appeal_id, lon, lat, status, appeal_type, topic, sector_id, started, due, stored, paused_at,
                 assignee_id, reg_no) in db.session.execute(columns)]
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
