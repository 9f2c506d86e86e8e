"""The audit log: append hash-chained entries, and verify the chain.

Every entry stores ``prev_hash`` (the hash of the entry before it; zeros for the
first) and ``hash`` = SHA-256 over a canonical JSON serialisation of its own fields
plus ``prev_hash`` (:func:`entry_hash`). Ids are consecutive (head + 1), so
:func:`verify` can tell an edited entry (its hash no longer matches), a deleted one
(an id is missing), swapped or inserted ones (a ``prev_hash`` or hash mismatch).

Appends are serialised so two transactions never chain onto the same head: on
PostgreSQL a transaction-level advisory lock is taken before the head is read (and
held to commit); SQLite transactions already start with ``BEGIN IMMEDIATE``
(server/database.py), which admits one writer at a time.

Contact views are noted during a request (:func:`note_contact_view`) and written
by an ``after_request`` hook that commits them, so contact data never leaves the
server without its entry (a failed commit turns the response into a 500).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, g, has_request_context
from sqlalchemy import select, text

from server.extensions import db
from server.models.audit import GENESIS_HASH, AuditEntry

# pg_advisory_xact_lock key for the chain head (an arbitrary constant: "AUDIT" in ASCII).
CHAIN_LOCK_KEY = 0x4155444954


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


def _lock_chain() -> None:
    """Serialise appends until this transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})


def _head() -> tuple[int, str]:
    row = db.session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def record_many(items: list[dict], now: datetime) -> list[AuditEntry]:
    """Append several entries (dicts of :func:`record`'s arguments) in order, reading the head once."""
    if not items:
        return []
    _lock_chain()
    last_id, last_hash = _head()
    out = []
    for item in items:
        actor = who(item.get("actor"))
        # Round-trip the data through JSON now, so the hashed value is exactly what the column gives back.
        data = json.loads(canonical(item.get("data") or {}))
        object_id = item.get("object_id")
        entry = AuditEntry(id=last_id + 1, at=now, actor_kind=actor.kind, actor_id=actor.staff_id,
                           actor_name=(actor.name or None) and actor.name[:64], action=item["action"],
                           object_type=item.get("object_type"),
                           object_id=None if object_id is None else str(object_id), data=data,
                           prev_hash=last_hash)
        entry.hash = entry_hash(entry)
        db.session.add(entry)
        out.append(entry)
        last_id, last_hash = entry.id, entry.hash
    db.session.flush()
    return out


def record(action: str, actor, now: datetime, *, object_type: str | None = None, object_id=None,
           data: dict | None = None) -> AuditEntry:
    """Append one entry to the chain (flushed, not committed: it shares the caller's transaction)."""
    return record_many([{"action": action, "actor": actor, "object_type": object_type, "object_id": object_id,
                         "data": data}], now)[0]


# --- permission changes -------------------------------------------------------------------------

def staff_snapshot(staff) -> dict:
    """What decides a staff member's rights (and duty), to compare before and after a change."""
    return {"role": staff.role, "unit_id": staff.unit_id, "active": bool(staff.active), "shift": staff.shift_code}


def record_staff_change(staff, before: dict, actor, now: datetime) -> AuditEntry | None:
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
