"""Working days on the Kazakhstan calendar, in Asia/Almaty time.

A day is a working day when it is Monday to Friday and not a public holiday of
the ``holidays`` package - unless the admin override table (``CalendarOverride``)
says otherwise: the government's day-off transfers make a Saturday a working day
(``working``) and a bridge Monday a day off (``day_off``); extra days off are
``day_off`` rows too. Overrides are cached per app for JAUAP's few-minute horizon
(:data:`CACHE_TTL_S`) and the cache is dropped on every edit, so a worker process
sees an edit made elsewhere within that time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import select

from server.extensions import db
from server.models import CalendarOverride, Staff
from server.services.cache import AppCache

TZ = ZoneInfo("Asia/Almaty")
WORKDAY_END = time(18, 0)
CACHE_TTL_S = 60.0


@lru_cache(maxsize=32)
def _kz_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("KZ", years=year).keys())


def _load_overrides() -> dict[date, str]:
    return {row.day: row.kind for row in db.session.scalars(select(CalendarOverride))}


_overrides = AppCache("jauap_calendar_overrides", _load_overrides, CACHE_TTL_S, outside=dict)


def overrides() -> dict[date, str]:
    """The override table as ``{day: "working" | "day_off"}`` (cached; empty outside an app context)."""
    return _overrides.get()


def invalidate() -> None:
    """Drop the cached overrides (called after every edit)."""
    _overrides.invalidate()


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Kazakhstan public holiday, unless an admin override says otherwise."""
    kind = overrides().get(day)
    if kind is not None:
        return kind == "working"
    return day.weekday() < 5 and day not in _kz_holidays(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """End (18:00 local) of the ``days``-th working day after ``start``'s local date, in UTC."""
    local_day = start.astimezone(TZ).date()
    counted = 0
    while counted < days:
        local_day += timedelta(days=1)
        if is_working_day(local_day):
            counted += 1
    return datetime.combine(local_day, WORKDAY_END, tzinfo=TZ).astimezone(start.tzinfo or TZ)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=TZ)


def working_seconds_between(start: datetime, end: datetime) -> float:
    """Seconds between ``start`` and ``end`` that fall on working days (a working day counts all 24 hours)."""
    if end <= start:
        return 0.0
    total = 0.0
    cursor = start.astimezone(TZ)
    end = end.astimezone(TZ)
    while cursor < end:
        next_midnight = _day_start(cursor.date() + timedelta(days=1))
        stop = min(next_midnight, end)
        if is_working_day(cursor.date()):
            total += (stop - cursor).total_seconds()
        cursor = stop
    return total


def add_working_seconds(start: datetime, seconds: float) -> datetime:
    """``start`` moved forward by ``seconds`` of working-day time (non-working days are skipped whole)."""
    cursor = start.astimezone(TZ)
    left = float(seconds)
    while left > 0:
        next_midnight = _day_start(cursor.date() + timedelta(days=1))
        if is_working_day(cursor.date()):
            room = (next_midnight - cursor).total_seconds()
            if left <= room:
                return (cursor + timedelta(seconds=left)).astimezone(start.tzinfo or TZ)
            left -= room
        cursor = next_midnight
    return cursor.astimezone(start.tzinfo or TZ)


def local_year(moment: datetime) -> int:
    """The calendar year in Turkestan at ``moment`` (registration numbers restart on 1 January local)."""
    return moment.astimezone(TZ).year


def local_date(moment: datetime) -> date:
    """The date in Turkestan at ``moment``."""
    return moment.astimezone(TZ).date()


def list_overrides(year: int | None = None) -> list[CalendarOverride]:
    """The override rows, by date (one year's when ``year`` is given)."""
    query = select(CalendarOverride).order_by(CalendarOverride.day)
    if year is not None:
        query = query.where(CalendarOverride.day >= date(year, 1, 1), CalendarOverride.day <= date(year, 12, 31))
    return list(db.session.scalars(query))


def set_override(day: date, kind: str, note: str, staff: Staff | None, now: datetime) -> CalendarOverride:
    """Create or replace the override of ``day`` (kind ``working`` or ``day_off``; validated by the schema)."""
    row = db.session.get(CalendarOverride, day)
    if row is None:
        row = CalendarOverride(day=day)
        db.session.add(row)
    row.kind, row.note = kind, note or ""
    return _overrides.saved(row, staff, now)


def delete_override(day: date) -> None:
    """Remove the override of ``day`` (NotFound when there is none)."""
    _overrides.delete_row(CalendarOverride, day, "calendar_day_not_found")


def public_holidays(year: int) -> list[tuple[date, str]]:
    """The ``holidays`` package's Kazakhstan public holidays of ``year``, by date, with their names."""
    return sorted(holidays.country_holidays("KZ", years=year).items())
