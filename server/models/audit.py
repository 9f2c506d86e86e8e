"""The audit log: append-only, hash-chained entries of who did what to which object.

Each entry's ``hash`` is SHA-256 over a canonical serialisation of the entry and
the previous entry's hash (``services.audit.entry_hash``), so editing, deleting,
swapping or inserting an entry breaks the chain at that point
(``flask audit verify``). Ids are consecutive and assigned by the service under a
lock, so a missing id is a deleted entry. On PostgreSQL triggers refuse UPDATE,
DELETE and TRUNCATE (migration 0006); the ORM refuses them everywhere.

Entries are written first to ``audit_pending``, a queue, by the acting transaction
(a plain INSERT, no lock); ``services.audit.seal_pending`` (run by the worker every
few seconds, or ``flask audit seal``) moves them into the chain in their id order. Triggers
(migration 0009) refuse to update a queued entry, or to delete one the chain does not yet hold.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db
from server.models.appeal import AppendOnlyError
from server.models.types import UTCDateTime

GENESIS_HASH = "0" * 64


class AuditEntry(db.Model):
    """One audited act: a status change, a view of contact data, a permission change, a login."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_object", "object_type", "object_id"),)

    # Assigned by services.audit as head + 1 under the chain lock (not a sequence): gaps mean deletions.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # staff | citizen | system | anonymous
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # a staff id (no FK: kept apart)
    actor_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPending(db.Model):
    """An audited act recorded by its transaction, not yet chained (deleted once it is in ``audit_entry``)."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the chaining order
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper, connection, target):
    raise AppendOnlyError("audit entries are append-only")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AppendOnlyError("audit entries are append-only")
