"""The audit log: append hash-chained entries, and verify the chain.

Every entry stores ``prev_hash`` (the hash of the entry before it; zeros for the
first) and ``hash`` = SHA-256 over a canonical JSON serialisation of its own fields
plus ``prev_hash`` (:func:`entry_hash`). Ids are consecutive (head + 1), so
:func:`verify` can tell an edited entry (its hash no longer matches), a deleted one
(an id is missing), swapped or inserted ones (a ``prev_hash`` or hash mismatch).

Entries are written in two steps, so that building the chain never sits on a request's
path. :func:`record` adds an ``audit_pending`` row to the caller's session: a plain
INSERT that commits (or rolls back, savepoints included) with the act it records, and
takes no lock, so writers never wait on each other for the audit. :func:`seal_pending`,
run by the worker every outbox interval (``server/worker.py``; ``flask audit seal`` by
hand), then moves the committed pending rows into ``audit_entry`` in their id order, in
one transaction of its own: it takes the chain lock, reads the head, numbers and hashes
the rows, inserts them and deletes them from the queue. On PostgreSQL the lock is a
transaction-level advisory lock (released by the commit), so two sealers never chain
onto the same head; SQLite transactions already start with ``BEGIN IMMEDIATE``
(server/database.py), which admits one writer at a time. The chain's order is the
sealing order, which may differ slightly from the commit order of the acts.

Contact views are noted during a request (:func:`note_contact_view`) and written
by an ``after_request`` hook that commits them, so contact data never leaves the
server without its (pending) entry (a failed commit turns the response into a 500).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from flask import Flask, g, has_request_context
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from server.extensions import db
from server.models.audit import GENESIS_HASH, AuditEntry, AuditPending

# pg_advisory_xact_lock key for the chain head (an arbitrary constant: "AUDIT" in ASCII).
CHAIN_LOCK_KEY = 0x4155444954
# Pending rows chained per seal_pending transaction.
SEAL_BATCH = 500


@dataclass(frozen=True)
class Who:
    """The actor of an audited act."""

    kind: str  # staff | citizen | system | anonymous
    staff_id: int | None = None
    name: str | None = None


SYSTEM = Who("system")


def who(actor) -> Who:
    """A :class:`Who` for a Staff row, a lifecycle Actor, a Who, or None (the system)."""
    if actor is None:
        return SYSTEM
    if isinstance(actor, Who):
        return actor
    if hasattr(actor, "username"):  # a Staff row
        return Who("staff", actor.id, actor.username)
    staff_id = getattr(actor, "staff_id", None)
    return Who(getattr(actor, "kind", "system"), staff_id, None)


def _stamp(at: datetime) -> str:
    # Microseconds in UTC: both backends store them, so the value reads back identical.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(entry) -> str:
    """SHA-256 (hex) over the canonical serialisation of ``entry``'s fields and its ``prev_hash``.

    ``entry`` is an AuditEntry or a row with the same attributes.
    """
    body = canonical({
        "id": entry.id, "at": _stamp(entry.at), "actor_kind": entry.actor_kind, "actor_id": entry.actor_id,
        "actor_name": entry.actor_name, "action": entry.action, "object_type": entry.object_type,
        "object_id": entry.object_id, "data": entry.data or {}, "prev_hash": entry.prev_hash,
    })
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record_many(items: list[dict], now: datetime) -> list[AuditPending]:
    """Record several entries (dicts of :func:`record`'s arguments), in order, in the caller's transaction.

    They are ``audit_pending`` rows until :func:`seal_pending` chains them; a rollback drops them.
    """
    session = db.session()
    out = []
    for item in items:
        actor = who(item.get("actor"))
        # Round-trip the data through JSON now, so the hashed value is exactly what the column gives back.
        data = json.loads(canonical(item.get("data") or {}))
        object_id = item.get("object_id")
        row = AuditPending(at=now, actor_kind=actor.kind, actor_id=actor.staff_id,
                           actor_name=(actor.name or None) and actor.name[:64], action=item["action"],
                           object_type=item.get("object_type"),
                           object_id=None if object_id is None else str(object_id), data=data)
        session.add(row)
        out.append(row)
    return out


def _lock_chain(session: Session, wait: bool) -> bool:
    """Take the chain lock until this transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY}).scalar())


def _head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def seal_pending(limit: int = SEAL_BATCH, *, wait: bool = True) -> int:
    """Chain up to ``limit`` committed pending entries, oldest id first; returns how many were sealed.

    One transaction of its own on ``db.session`` (it commits; call it with no unit of work
    open): take the chain lock, read the head, give the pending rows ids head + 1, ...
    with their ``prev_hash`` and ``hash``, insert them into ``audit_entry``, delete them
    from ``audit_pending``, commit. With ``wait=False`` a sealer that finds the lock taken
    (PostgreSQL: another sealer is at work) seals nothing and returns 0.
    """
    session = db.session()
    try:
        if not _lock_chain(session, wait):
            session.rollback()
            return 0
        pending = AuditPending.__table__
        rows = list(session.execute(select(*pending.c).order_by(pending.c.id).limit(limit)))
        if not rows:
            session.commit()
            return 0
        last_id, last_hash = _head(session)
        values = []
        for row in rows:
            entry = SimpleNamespace(id=last_id + 1, at=row.at, actor_kind=row.actor_kind, actor_id=row.actor_id,
                                    actor_name=row.actor_name, action=row.action, object_type=row.object_type,
                                    object_id=row.object_id, data=row.data or {}, prev_hash=last_hash)
            entry.hash = entry_hash(entry)
            values.append(vars(entry))
            last_id, last_hash = entry.id, entry.hash
        session.execute(insert(AuditEntry.__table__), values)
        session.execute(delete(pending).where(pending.c.id.in_([row.id for row in rows])))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(rows)


def seal_all(*, wait: bool = True) -> int:
    """Seal batch after batch until one comes back short (the queue is empty); returns the total."""
    total = 0
    while True:
        sealed = seal_pending(wait=wait)
        total += sealed
        if sealed < SEAL_BATCH:
            return total


def pending_count() -> int:
    """How many committed entries wait in ``audit_pending`` to be chained."""
    return db.session.scalar(select(func.count()).select_from(AuditPending)) or 0


def record(action: str, actor, now: datetime, *, object_type: str | None = None, object_id=None,
           data: dict | None = None) -> AuditPending:
    """Record one entry in the caller's transaction (a pending row, chained later by :func:`seal_pending`)."""
    return record_many([{"action": action, "actor": actor, "object_type": object_type, "object_id": object_id,
                         "data": data}], now)[0]


# --- permission changes -------------------------------------------------------------------------

def staff_snapshot(staff) -> dict:
    """What decides a staff member's rights (and duty), to compare before and after a change."""
    return {"role": staff.role, "unit_id": staff.unit_id, "active": bool(staff.active), "shift": staff.shift_code}


def record_staff_change(staff, before: dict, actor, now: datetime) -> AuditPending | None:
    """Audit the fields of ``staff`` that differ from ``before`` (nothing changed: no entry)."""
    after = staff_snapshot(staff)
    changes = {k: [before[k], after[k]] for k in after if before.get(k) != after[k]}
    if not changes:
        return None
    return record("staff.update", actor, now, object_type="staff", object_id=staff.id,
                  data={"username": staff.username, "changes": changes})


# --- contact views ------------------------------------------------------------------------------

def note_contact_view(appeal_id: int, viewer, now: datetime) -> None:
    """Note that ``viewer`` is being served the applicant's contact on ``appeal_id``.

    Inside a request the entry is written and committed after the view (one per appeal
    per response); outside one it is recorded at once in the caller's transaction.
    """
    if not has_request_context():
        record("contact.view", viewer, now, object_type="appeal", object_id=appeal_id)
        return
    pending = g.setdefault("_audit_contact_views", {})
    pending.setdefault(appeal_id, (viewer, now))


def _flush_contact_views(response):
    pending = g.pop("_audit_contact_views", None)
    if not pending or response.status_code >= 400:
        return response
    from flask import request

    items = [{"action": "contact.view", "actor": viewer, "object_type": "appeal", "object_id": appeal_id,
              "data": {"path": request.path}} for appeal_id, (viewer, _now) in pending.items()]
    now = next(iter(pending.values()))[1]
    record_many(items, now)
    db.session.commit()
    return response


def init_audit(app: Flask) -> None:
    """Write the contact views a request noted once its view has answered."""
    app.after_request(_flush_contact_views)


# --- verification -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The result of walking the chain: ok, or the first broken entry and why."""

    ok: bool
    checked: int
    entry_id: int | None = None
    problem: str | None = None  # hash_mismatch | chain_broken | missing


def verify(batch: int = 5000) -> Verdict:
    """Walk the chain in id order and name the first entry that does not fit."""
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
    last_id = 0
    while True:
        # Plain rows, not ORM objects: nothing piles up in the session on a long chain.
        table = AuditEntry.__table__
        rows = list(db.session.execute(select(*table.c).where(table.c.id > last_id)
                                       .order_by(table.c.id).limit(batch)))
        if not rows:
            return Verdict(ok=True, checked=checked)
        for entry in rows:
            if entry.id != expected_id:
                return Verdict(ok=False, checked=checked, entry_id=expected_id, problem="missing")
            if entry.prev_hash != expected_prev:
                return Verdict(ok=False, checked=checked, entry_id=entry.id, problem="chain_broken")
            if entry_hash(entry) != entry.hash:
                return Verdict(ok=False, checked=checked, entry_id=entry.id, problem="hash_mismatch")
            expected_prev, expected_id, checked = entry.hash, entry.id + 1, checked + 1
            last_id = entry.id
