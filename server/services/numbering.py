"""Registration numbers: ``TRK-2026-000123``, gap-free per year, unique under concurrency."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.extensions import db
from server.models import RegCounter


def allocate_reg_no(prefix: str, year: int) -> str:
    """Take the next number of ``year`` inside the caller's transaction.

    The counter row is created if missing and incremented with UPDATE ...
    RETURNING, which locks it until the transaction ends: two intakes can never
    get the same number, and a rolled-back intake gives its number back.
    """
    bind = db.session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(RegCounter).values(prefix=prefix, year=year, value=0).on_conflict_do_nothing()
    )
    value = db.session.execute(
        update(RegCounter)
        .where(RegCounter.prefix == prefix, RegCounter.year == year)
        .values(value=RegCounter.value + 1)
        .returning(RegCounter.value)
    ).scalar_one()
    return format_reg_no(prefix, year, value)


def format_reg_no(prefix: str, year: int, value: int) -> str:
    """``TRK``, 2026, 123 -> ``TRK-2026-000123`` (six digits cover the city's ~42k a year)."""
    return f"{prefix}-{year}-{value:06d}"
