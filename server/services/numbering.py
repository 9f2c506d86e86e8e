"""Registration numbers: ``TRK-2026-000123``, gap-free per year, unique under concurrency."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value

from server.extensions import db
from server.models import Appeal, RegCounter


def _counter_upsert(prefix: str, year: int):
    bind = db.session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(RegCounter).values(prefix=prefix, year=year, value=1)
    return stmt.on_conflict_do_update(
        index_elements=[RegCounter.prefix, RegCounter.year], set_={"value": RegCounter.value + 1}
    ).returning(RegCounter.value)


def allocate_reg_no(prefix: str, year: int) -> str:
    """Take the next number of ``year`` inside the caller's transaction.

    One upsert (INSERT ... ON CONFLICT DO UPDATE ... RETURNING) creates or increments
    the counter row and locks it until the transaction ends: two intakes can never get
    the same number, and a rolled-back intake gives its number back. One statement, so
    the lock is taken as late and held as briefly as the caller allows.
    """
    value = db.session.execute(_counter_upsert(prefix, year)).scalar_one()
    return format_reg_no(prefix, year, value)


def provisional_reg_no() -> str:
    """A unique stand-in for an appeal stored before its number is taken (never committed)."""
    return "~" + secrets.token_hex(15)


def number_appeal(appeal: Appeal, prefix: str, year: int) -> str:
    """Give a stored (flushed) appeal its number, as the last statement before the caller commits.

    The counter row stays locked from here to the commit, and concurrent intakes queue on it,
    so intake stores the appeal and its events under a provisional number first and takes the
    real one at the very end. On PostgreSQL the counter upsert and the appeal's update are one
    statement (a data-modifying CTE), i.e. one round trip inside the lock.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        params = {"prefix": prefix, "year": year, "lead": f"{prefix}-{year}-", "appeal_id": appeal.id}
        reg_no = db.session.execute(_pg_number_statement(), params).scalar_one()
        set_committed_value(appeal, "reg_no", reg_no)  # what the row now holds: no second UPDATE
        return reg_no
    # SQLite takes a database-wide write lock anyway: two plain statements.
    appeal.reg_no = allocate_reg_no(prefix, year)
    db.session.flush()
    return appeal.reg_no


@cache
def _pg_number_statement():
    """``WITH counter AS (upsert ... RETURNING value) UPDATE appeal SET reg_no = <formatted> ...``, built once."""
    upsert = pg_insert(RegCounter).values(prefix=bindparam("prefix"), year=bindparam("year"), value=1)
    counter = upsert.on_conflict_do_update(
        index_elements=[RegCounter.prefix, RegCounter.year], set_={"value": RegCounter.value + 1}
    ).returning(RegCounter.value).cte("counter")
    digits = func.cast(counter.c.value, String)
    # f"{value:06d}": at least six digits, more when the year outgrows them
    number = bindparam("lead", type_=String) + func.lpad(digits, func.greatest(6, func.length(digits)), "0")
    return (update(Appeal).where(Appeal.id == bindparam("appeal_id")).values(reg_no=select(number).scalar_subquery())
            .returning(Appeal.reg_no).add_cte(counter).execution_options(synchronize_session=False))


def format_reg_no(prefix: str, year: int, value: int) -> str:
    """``TRK``, 2026, 123 -> ``TRK-2026-000123`` (six digits cover the city's ~42k a year)."""
    return f"{prefix}-{year}-{value:06d}"
