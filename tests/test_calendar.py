"""The working-day calendar on real Kazakhstan dates (Asia/Almaty), with the admins' override table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from server.extensions import db
from server.services import calendar
from server.services.calendar import add_working_days, add_working_seconds, is_working_day, working_seconds_between
from tests.appeal_factory import (
    ALMATY,
    end_of,
    fresh_caches,  # noqa: F401 (autouse fixture)
    local,
)


def test_almaty_is_utc_plus_5():
    assert local(2026, 3, 2).utcoffset() == timedelta(0)
    assert datetime(2026, 3, 2, 10, tzinfo=ALMATY).utcoffset() == timedelta(hours=5)
    assert end_of(2026, 3, 27) == datetime(2026, 3, 27, 13, 0, tzinfo=UTC)


def test_independence_day_16_december_2025():
    assert not is_working_day(date(2025, 12, 16))  # Tuesday, Independence Day
    assert is_working_day(date(2025, 12, 17))
    # Registered Monday 15 December: 3 working days skip the 16th -> Friday 19th, 18:00 local.
    assert add_working_days(local(2025, 12, 15), 3) == end_of(2025, 12, 19)
    # Registered Tuesday 15 December 2026 (the 16th is a Wednesday): the 17th, 18th and 21st.
    assert add_working_days(local(2026, 12, 15), 3) == end_of(2026, 12, 21)


def test_nauryz_2026_and_the_observed_days():
    for day in (21, 22, 23, 24, 25):  # Sat-Sun-Mon Nauryz, Tue-Wed the observed days off
        assert not is_working_day(date(2026, 3, day))
    assert add_working_days(local(2026, 3, 20), 1) == end_of(2026, 3, 26)
    # 15 working days (Art. 76) from Monday 2 March 2026: 9 March (observed) and 23-25 March are skipped.
    assert add_working_days(local(2026, 3, 2), 15) == end_of(2026, 3, 27)


def test_the_local_date_decides_not_the_utc_date():
    # 23:30 local on Friday 13 March is still Friday 18:30 UTC: the count starts from Friday.
    late_friday = datetime(2026, 3, 13, 23, 30, tzinfo=ALMATY)
    assert add_working_days(late_friday.astimezone(UTC), 1) == end_of(2026, 3, 16)


def test_a_government_day_off_transfer_from_the_override_table(app, db_session):
    # Without overrides Friday 18 December 2026 is a working day and Saturday the 19th is not.
    assert add_working_days(local(2026, 12, 17), 1) == end_of(2026, 12, 18)
    calendar.set_override(date(2026, 12, 18), "day_off", "transfer from Saturday 19 December", None,
                          datetime(2026, 11, 1, tzinfo=UTC))
    calendar.set_override(date(2026, 12, 19), "working", "working Saturday (transfer)", None,
                          datetime(2026, 11, 1, tzinfo=UTC))
    assert not is_working_day(date(2026, 12, 18)) and is_working_day(date(2026, 12, 19))
    assert add_working_days(local(2026, 12, 17), 1) == end_of(2026, 12, 19)
    calendar.delete_override(date(2026, 12, 19))
    calendar.delete_override(date(2026, 12, 18))
    assert add_working_days(local(2026, 12, 17), 1) == end_of(2026, 12, 18)


def test_an_extra_day_off_moves_a_deadline(db_session):
    calendar.set_override(date(2026, 3, 26), "day_off", "extra day off", None, datetime(2026, 3, 1, tzinfo=UTC))
    assert add_working_days(local(2026, 3, 20), 1) == end_of(2026, 3, 27)
    db.session.rollback()
    calendar.invalidate()
    assert add_working_days(local(2026, 3, 20), 1) == end_of(2026, 3, 26)


def test_working_seconds_skip_weekends_and_holidays():
    # Friday 10:00 to Monday 10:00: 14 h of Friday and 10 h of Monday.
    assert working_seconds_between(local(2026, 3, 13), local(2026, 3, 16)) == 24 * 3600
    # Across Nauryz: Friday 20 March 12:00 to Thursday 26 March 12:00 -> 12 h + 12 h.
    assert working_seconds_between(local(2026, 3, 20, 12), local(2026, 3, 26, 12)) == 24 * 3600
    # Adding it back lands on the same working time.
    assert add_working_seconds(local(2026, 3, 20, 12), 24 * 3600) == local(2026, 3, 26, 12)
    # Tuesday 15 December 18:00 + 8 h: 6 h of Tuesday, Independence Day skipped, 2 h of Thursday.
    assert add_working_seconds(end_of(2026, 12, 15), 8 * 3600) == local(2026, 12, 17, 2)
