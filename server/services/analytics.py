"""The analysts' dashboard: counts, backlog, timeliness, quality, hotspots and trends.

Every figure is one aggregate query over ``appeal`` (plus ``appeal_event`` / ``feedback``),
filtered the same way (period, type, topic, sector, channel), so the figures always agree
with each other and with their exports. Nothing here returns personal data: no citizen,
no description, no staff names. Locations leave the database already rounded: to about
100 m (3 decimals) for the roles in ``COARSE_ROLES``, and hotspots are 250 m grid cells.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Numeric, and_, case, cast, func, literal_column, select

from server.extensions import db
from server.models import OPEN_STATUSES, Appeal, AppealEvent, Feedback, Sector, Unit
from server.services.errors import Unprocessable

ALMATY = ZoneInfo("Asia/Almaty")
ANALYTICS_ROLES = frozenset({"analyst", "pr_manager", "methodologist", "qc_analyst", "inspector", "admin"})
# These roles see places only to about 100 m (the issue: analysts and the PR manager).
COARSE_ROLES = frozenset({"analyst", "pr_manager"})
DIMENSIONS = ("type", "topic", "sector", "channel", "status")
PERIODS = ("day", "week", "month")
# Hotspot grid: ~250 m cells. One degree of latitude is ~111.32 km; longitude shrinks with
# cos(latitude), taken at Turkestan (43.3 N) so cells are square there.
CELL_M = 250.0
CELL_LAT = CELL_M / 111_320.0
CELL_LON = CELL_M / (111_320.0 * math.cos(math.radians(43.3)))
HOTSPOT_LIMIT = 400
FIRST_CONTACT_FROM = ("registered", "routed", "unrouted")
BACKLOG_ROW_LIMIT = 200


@dataclass(frozen=True)
class Filters:
    """What every figure is restricted to; lists are OR-ed, fields AND-ed."""

    date_from: date | None = None  # local (Asia/Almaty) dates, inclusive
    date_to: date | None = None
    types: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, date_from=None, date_to=None, type=None, topic=None, sector=None, channel=None) -> Filters:
        """Build filters from query-string values (comma-separated lists, ISO dates)."""

        def split(value):
            return tuple(v.strip() for v in (value or "").split(",") if v.strip())

        def day(value, field):
            if value in (None, ""):
                return None
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise Unprocessable("invalid_date", field=field) from None

        return cls(day(date_from, "date_from"), day(date_to, "date_to"), split(type), split(topic),
                   split(sector), split(channel))

    def clauses(self) -> list:
        """SQL conditions on ``appeal`` for these filters."""
        out = []
        if self.date_from:
            out.append(Appeal.created_at >= _local_midnight(self.date_from))
        if self.date_to:
            out.append(Appeal.created_at < _local_midnight(self.date_to + timedelta(days=1)))
        if self.types:
            out.append(Appeal.type.in_(self.types))
        if self.topics:
            out.append(Appeal.topic_code.in_(self.topics))
        if self.channels:
            out.append(Appeal.channel.in_(self.channels))
        if self.sectors:
            # Sector codes, across every sector-set version (appeals keep the row they were routed to).
            out.append(Appeal.sector_id.in_(select(Sector.id).where(Sector.code.in_(self.sectors))))
        return out


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ALMATY).astimezone(UTC)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _hours(start, end):
    """SQL: hours between two timestamp columns."""
    if _dialect() == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _bucket(period: str):
    """SQL: the local (UTC+5) day / week (its Monday) / month an appeal was created in, as text."""
    if period not in PERIODS:
        raise Unprocessable("invalid_period", field="period")
    if _dialect() == "postgresql":
        local = func.timezone("Asia/Almaty", Appeal.created_at)
        return func.to_char(func.date_trunc(period, local), "YYYY-MM-DD" if period != "month" else "YYYY-MM")
    # SQLite keeps UTC text; Kazakhstan has had no DST since 2005, so +5 hours is exact.
    if period == "day":
        return func.strftime("%Y-%m-%d", Appeal.created_at, "+5 hours")
    if period == "week":
        return func.date(Appeal.created_at, "+5 hours", "-6 days", "weekday 1")
    return func.strftime("%Y-%m", Appeal.created_at, "+5 hours")


def _codes():
    sectors = dict(db.session.execute(select(Sector.id, Sector.code)).all())
    units = dict(db.session.execute(select(Unit.id, Unit.code)).all())
    return sectors, units


def counts(filters: Filters, by: str) -> list[dict]:
    """Appeals per value of ``by`` (type, topic, sector, channel, status), largest first."""
    if by not in DIMENSIONS:
        raise Unprocessable("invalid_dimension", field="by")
    if by == "sector":
        key = Sector.code
        query = select(key, func.count(Appeal.id)).select_from(Appeal).outerjoin(Sector,
                                                                                  Sector.id == Appeal.sector_id)
    else:
        key = {"type": Appeal.type, "topic": Appeal.topic_code, "channel": Appeal.channel,
               "status": Appeal.status}[by]
        query = select(key, func.count(Appeal.id))
    query = query.where(*filters.clauses()).group_by(key).order_by(func.count(Appeal.id).desc(), key)
    return [{"key": k if k is not None else "none", "count": n} for k, n in db.session.execute(query)]


def trend(filters: Filters, period: str) -> list[dict]:
    """Per period: appeals received, and how many of those are still open."""
    bucket = _bucket(period).label("period")
    still_open = func.sum(case((Appeal.status.in_(OPEN_STATUSES), 1), else_=0))
    query = (select(bucket, func.count(Appeal.id), still_open).where(*filters.clauses())
             .group_by(bucket).order_by(bucket))
    return [{"period": p, "received": n, "open": int(o or 0)} for p, n, o in db.session.execute(query)]


def backlog(filters: Filters, now: datetime) -> dict:
    """The open-now backlog: how many are open of how many, by status and sector, and how many overdue."""
    base = filters.clauses()
    total = db.session.scalar(select(func.count(Appeal.id)).where(*base)) or 0
    overdue = case((and_(Appeal.due_at.is_not(None), Appeal.due_at < now), 1), else_=0)
    open_q = (select(Appeal.status, Sector.code, func.count(Appeal.id), func.sum(overdue))
              .select_from(Appeal).outerjoin(Sector, Sector.id == Appeal.sector_id)
              .where(*base, Appeal.status.in_(OPEN_STATUSES)).group_by(Appeal.status, Sector.code))
    by_status: dict[str, int] = {}
    by_sector: dict[str, int] = {}
    open_total = overdue_total = 0
    for status, sector, n, late in db.session.execute(open_q):
        by_status[status] = by_status.get(status, 0) + n
        by_sector[sector or "none"] = by_sector.get(sector or "none", 0) + n
        open_total += n
        overdue_total += int(late or 0)
    return {"total": total, "open": open_total, "overdue": overdue_total,
            "open_share": round(open_total / total, 4) if total else 0.0,
            "by_status": [{"key": k, "count": v} for k, v in sorted(by_status.items(), key=lambda kv: -kv[1])],
            "by_sector": [{"key": k, "count": v} for k, v in sorted(by_sector.items())]}


def backlog_rows(filters: Filters, now: datetime, viewer_role: str, limit: int | None = None) -> Iterator[list]:
    """Open appeals, oldest first, without personal data; places rounded in SQL for coarse roles."""
    digits = 3 if viewer_role in COARSE_ROLES else 5
    # numeric: PostgreSQL has round(numeric, int) only
    lon = func.round(cast(func.ST_X(Appeal.location), Numeric), digits)
    lat = func.round(cast(func.ST_Y(Appeal.location), Numeric), digits)
    query = (select(Appeal.reg_no, Appeal.type, Appeal.topic_code, Appeal.channel, Sector.code, Appeal.status,
                    Appeal.created_at, Appeal.due_at, lat, lon)
             .select_from(Appeal).outerjoin(Sector, Sector.id == Appeal.sector_id)
             .where(*filters.clauses(), Appeal.status.in_(OPEN_STATUSES))
             .order_by(Appeal.created_at, Appeal.id))
    if limit:
        query = query.limit(limit)
    for reg_no, typ, topic, channel, sector, status, created, due, y, x in db.session.execute(
            query.execution_options(yield_per=2000)):
        yield [reg_no, typ, topic, channel, sector or "", status, _iso(created), _iso(due),
               "yes" if due is not None and due < now else "no",
               None if y is None else float(y), None if x is None else float(x)]


BACKLOG_HEADER = ["reg_no", "type", "topic", "channel", "sector", "status", "created_at", "due_at", "overdue",
                  "lat", "lon"]


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(ALMATY).strftime("%Y-%m-%d %H:%M")


def _closed_rows(filters: Filters, group):
    """(group key, closed with a deadline, of them answered on time) for closed appeals."""
    # On time = the answer (Art. 76: the duty is discharged when the citizen is answered) came by the
    # due time; the later close (citizen confirmation or auto-close) does not move it.
    on_time = func.sum(case((func.coalesce(Appeal.answered_at, Appeal.closed_at) <= Appeal.due_at, 1), else_=0))
    return (select(group, func.count(Appeal.id), on_time)
            .where(*filters.clauses(), Appeal.closed_at.is_not(None), Appeal.due_at.is_not(None))
            .group_by(group))


def _event_rates(filters: Filters) -> tuple[int, int]:
    """(appeals with a deadline that were extended, consultations/gratitude answered at first contact).

    One pass over the two event kinds joined to the filtered appeals (COUNT DISTINCT: an appeal
    extended twice counts once), instead of an EXISTS per appeal.
    """
    extended = case((and_(AppealEvent.kind == "appeal.extended", Appeal.due_at.is_not(None)), Appeal.id))
    first = case((and_(AppealEvent.kind == "appeal.answered", AppealEvent.from_status.in_(FIRST_CONTACT_FROM),
                       Appeal.type.in_(("consultation", "gratitude"))), Appeal.id))
    row = db.session.execute(
        select(func.count(func.distinct(extended)), func.count(func.distinct(first)))
        .select_from(AppealEvent).join(Appeal, Appeal.id == AppealEvent.appeal_id)
        .where(*filters.clauses(), AppealEvent.kind.in_(("appeal.extended", "appeal.answered")))).one()
    return int(row[0] or 0), int(row[1] or 0)


def timeliness(filters: Filters) -> dict:
    """SLA compliance per sector and unit (closed appeals answered by due_at), median hours to resolve,
    first-contact resolution rate and extension rate."""
    sectors, units = _codes()
    per: dict[str, list[dict]] = {}
    for name, column, codes in (("by_sector", Appeal.sector_id, sectors), ("by_unit", Appeal.unit_id, units)):
        rows = []
        for key, closed, on_time in db.session.execute(_closed_rows(filters, column)):
            on_time = int(on_time or 0)
            rows.append({"key": codes.get(key, "none"), "closed": closed, "on_time": on_time,
                         "compliance": round(on_time / closed, 4) if closed else None})
        per[name] = sorted(rows, key=lambda r: r["key"])
    closed = sum(r["closed"] for r in per["by_sector"])
    on_time = sum(r["on_time"] for r in per["by_sector"])
    with_due, fcr_base = db.session.execute(
        select(func.count(Appeal.due_at),
               func.sum(case((Appeal.type.in_(("consultation", "gratitude")), 1), else_=0)))
        .where(*filters.clauses())).one()
    fcr_base = int(fcr_base or 0)
    n_extended, fcr_hits = _event_rates(filters)
    return {"closed": closed, "on_time": on_time, "compliance": round(on_time / closed, 4) if closed else None,
            "median_hours_to_resolve": median_hours(filters),
            "first_contact": {"eligible": fcr_base, "resolved": fcr_hits,
                              "rate": round(fcr_hits / fcr_base, 4) if fcr_base else None},
            "extension": {"with_deadline": with_due, "extended": n_extended,
                          "rate": round(n_extended / with_due, 4) if with_due else 0.0},
            **per}


def median_hours(filters: Filters) -> float | None:
    """Median hours from registration to close, over closed appeals."""
    hours = _hours(Appeal.created_at, Appeal.closed_at)
    where = (*filters.clauses(), Appeal.closed_at.is_not(None))
    if _dialect() == "postgresql":
        value = db.session.scalar(select(func.percentile_cont(0.5).within_group(hours)).where(*where))
        return None if value is None else round(float(value), 2)
    values = list(db.session.scalars(select(hours).where(*where)))
    return round(statistics.median(values), 2) if values else None


def quality(filters: Filters) -> dict:
    """Citizen ratings (1-5) and verdicts on the filtered appeals, overall and per sector."""
    base = (select(Feedback.rating, Feedback.verdict, Sector.code).select_from(Feedback)
            .join(Appeal, Appeal.id == Feedback.appeal_id).outerjoin(Sector, Sector.id == Appeal.sector_id)
            .where(*filters.clauses()))
    sub = base.subquery()
    rows = db.session.execute(
        select(sub.c.code, sub.c.rating, sub.c.verdict, func.count()).group_by(sub.c.code, sub.c.rating,
                                                                               sub.c.verdict)).all()
    dist = {str(r): 0 for r in range(1, 6)}
    verdicts = {"confirm": 0, "dispute": 0}
    per: dict[str, list[int]] = {}
    for code, rating, verdict, n in rows:
        verdicts[verdict] = verdicts.get(verdict, 0) + n
        if rating is not None:
            dist[str(rating)] += n
            acc = per.setdefault(code or "none", [0, 0])
            acc[0] += rating * n
            acc[1] += n
    rated = sum(dist.values())
    mean = sum(int(k) * v for k, v in dist.items()) / rated if rated else None
    return {"rated": rated, "mean": None if mean is None else round(mean, 2), "distribution": dist,
            "verdicts": verdicts,
            "by_sector": [{"key": k, "rated": n, "mean": round(s / n, 2)} for k, (s, n) in sorted(per.items())]}


def hotspots(filters: Filters, limit: int = HOTSPOT_LIMIT) -> list[dict]:
    """Repeated problems: appeals per ~250 m grid cell and topic (two or more), busiest first.

    Cells are computed in SQL (never exact points), so what leaves the database is a cell centre.
    """
    if _dialect() == "postgresql":
        cell = func.floor  # PostgreSQL's CAST rounds, so floor explicitly
    else:
        # SQLite's CAST truncates, which is floor here: Kazakhstan's coordinates are positive.
        def cell(value):
            return func.cast(value, Integer)
    gx = cell(func.ST_X(Appeal.location) / CELL_LON).label("gx")
    gy = cell(func.ST_Y(Appeal.location) / CELL_LAT).label("gy")
    n = func.count(Appeal.id)
    query = (select(gx, gy, Appeal.topic_code, n).where(*filters.clauses(), Appeal.location.is_not(None))
             .group_by(literal_column("gx"), literal_column("gy"), Appeal.topic_code).having(n >= 2)
             .order_by(n.desc()).limit(limit))
    return [{"lat": round((int(y) + 0.5) * CELL_LAT, 4), "lon": round((int(x) + 0.5) * CELL_LON, 4), "topic": topic,
             "count": count} for x, y, topic, count in db.session.execute(query)]


def dashboard(filters: Filters, now: datetime, *, role: str, period: str = "month") -> dict:
    """Every figure of the dashboard for these filters."""
    return {"filters": {"date_from": filters.date_from and filters.date_from.isoformat(),
                        "date_to": filters.date_to and filters.date_to.isoformat(),
                        "type": list(filters.types), "topic": list(filters.topics),
                        "sector": list(filters.sectors), "channel": list(filters.channels), "period": period},
            "counts": {by: counts(filters, by) for by in ("type", "topic", "sector", "channel")},
            "trend": trend(filters, period),
            "backlog": backlog(filters, now),
            "oldest_open": {"fields": BACKLOG_HEADER,
                            "rows": list(backlog_rows(filters, now, role, limit=BACKLOG_ROW_LIMIT))},
            "timeliness": timeliness(filters),
            "quality": quality(filters),
            "hotspots": hotspots(filters),
            "generated_at": now.isoformat()}


# --- views as tables (the exports) ------------------------------------------------------------------

VIEWS = ("type", "topic", "sector", "channel", "trend", "backlog", "timeliness_sector", "timeliness_unit",
         "ratings", "hotspots")


def view_table(view: str, filters: Filters, now: datetime, *, role: str,
               period: str = "month") -> tuple[list[str], Iterator[list]]:
    """One view as (header, rows): the same rows the dashboard shows, for CSV/XLSX."""
    if view in ("type", "topic", "sector", "channel"):
        return [view, "count"], iter([[r["key"], r["count"]] for r in counts(filters, view)])
    if view == "trend":
        return ["period", "received", "open"], iter([[r["period"], r["received"], r["open"]]
                                                      for r in trend(filters, period)])
    if view == "backlog":
        return BACKLOG_HEADER, backlog_rows(filters, now, role)
    if view in ("timeliness_sector", "timeliness_unit"):
        rows = timeliness(filters)["by_sector" if view == "timeliness_sector" else "by_unit"]
        return (["sector" if view == "timeliness_sector" else "unit", "closed", "on_time", "compliance"],
                iter([[r["key"], r["closed"], r["on_time"], r["compliance"]] for r in rows]))
    if view == "ratings":
        q = quality(filters)
        return ["rating", "count"], iter([[k, v] for k, v in q["distribution"].items()])
    if view == "hotspots":
        return ["lat", "lon", "topic", "count"], iter([[r["lat"], r["lon"], r["topic"], r["count"]]
                                                       for r in hotspots(filters)])
    raise Unprocessable("invalid_view", field="view")

