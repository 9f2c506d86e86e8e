"""Appeals on a frozen clock for the SLA, clock and calendar tests (shared helpers, not tests).

``new_appeal()`` registers an appeal through the real intake service at ``T0`` (Monday 2 March 2026,
10:00 in Turkestan) unless told otherwise. ``fresh_caches`` is an autouse fixture for the modules
that import it: the SLA policies and calendar overrides are cached per app, and tests roll their
rows back, so the caches are dropped around each test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from server.schemas import AppealIn
from server.services import calendar, sla
from server.services.intake import register_appeal
from server.services.lifecycle import Actor
from tests.conftest import appeal_body

ALMATY = ZoneInfo("Asia/Almaty")
OP = Actor("staff", "operator")
INSP = Actor("staff", "inspector")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ALMATY).astimezone(UTC)  # Monday 2 March 2026, 10:00 local


def local(y, m, d, hh=10, mm=0):
    """``hh:mm`` in Turkestan on that day, in UTC."""
    return datetime(y, m, d, hh, mm, tzinfo=ALMATY).astimezone(UTC)


def end_of(y, m, d):
    """18:00 in Turkestan on that day (the end of a working day), in UTC."""
    return local(y, m, d, 18, 0)


def new_appeal(now=T0, **overrides):
    """An appeal registered by an operator at ``now`` from ``appeal_body(**overrides)``."""
    return register_appeal(AppealIn(**appeal_body(**overrides)), actor=OP, now=now).appeal


def drop_caches(app) -> None:
    """Forget the cached SLA policies and calendar overrides of ``app``."""
    with app.app_context():
        sla.invalidate()
        calendar.invalidate()


@pytest.fixture(autouse=True)
def fresh_caches(app):
    """Policies and overrides are cached per app: drop them around each test (tests roll their rows back)."""
    drop_caches(app)
    yield
    drop_caches(app)
