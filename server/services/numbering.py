"""Registration numbers: ``TRK-2026-000123``, gap-free per year, unique under concurrency."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.extensions import db
from server.models import RegCounter


def allocate_reg_no(prefix: str, year: int) -> str:
    """Take the next number of ``year`` inside the caller's transaction.

    One upsert (INSERT ... ON CONFLICT DO UPDATE ... RETURNING) creates or increments
    the counter row and locks it until the transaction ends: two intakes can never get
    the same number, and a rolled-back intake gives its number back. One statement, so
    the lock is taken as late and held as briefly as the caller allows.
    """
    bind = db.session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(RegCounter).values(prefix=prefix, year=year, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RegCounter.prefix, RegCounter.year], set_={"value": RegCounter.value + 1}
    ).returning(RegCounter.value)
    value = db.session.execute(stmt).scalar_one()
    return format_reg_no(prefix, year, value)


def format_reg_no(prefix: str, year: int, value: int) -> str:
    """``TRK``, 2026, 123 -> ``TRK-2026-000123`` (six digits cover the city's ~42k a year)."""
    return f"{prefix}-{year}-{value:06d}"
