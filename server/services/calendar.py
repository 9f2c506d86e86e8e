"""Working days on the Kazakhstan calendar, in Asia/Almaty time.

Public holidays come from the ``holidays`` package. Government day-off
transfers are added by the SLA issue's override table; until then only the
package's list applies.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

TZ = ZoneInfo("Asia/Almaty")
WORKDAY_END = time(18, 0)


@lru_cache(maxsize=32)
def _kz_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("KZ", years=year).keys())


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Kazakhstan public holiday."""
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


def local_year(moment: datetime) -> int:
    """The calendar year in Turkestan at ``moment`` (registration numbers restart on 1 January local)."""
    return moment.astimezone(TZ).year
