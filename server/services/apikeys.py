"""Open311 API keys: issued by admins, shown once, stored only as a SHA-256.

A key is 32 random bytes (URL-safe base64) behind the ``j311_`` prefix, so it
can be recognised in a leaked log. Only ``sha256(key)`` is kept; a presented key
is hashed and looked up through the unique index on ``api_key.key_hash``.

Why no constant-time comparison: nothing compares the secret itself. The
database compares hashes, and a timing difference there could at most reveal a
prefix of the *hash* of a guess, which says nothing useful about any valid key
(finding a key with a chosen hash prefix is a preimage search on SHA-256 over
256 random bits). ``hmac.compare_digest`` guards a direct comparison of secrets;
there is none here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from server.extensions import db
from server.models import ApiKey
from server.services.errors import NotFound, Unprocessable

PREFIX = "j311_"
# last_used_at is a hint for admins, not an audit log: write it at most once a minute per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class IssuedKey:
    """A new key: the row, and the plaintext key (shown to the admin once, never stored)."""

    row: ApiKey
    key: str


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(name: str, *, created_by_id: int | None, now: datetime) -> IssuedKey:
    """Issue a key for the client ``name`` (flushes; the caller commits)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise Unprocessable("api_key_name_invalid", field="name")
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(key), active=True, created_by_id=created_by_id, created_at=now)
    db.session.add(row)
    db.session.flush()
    return IssuedKey(row=row, key=key)


def list_keys() -> list[ApiKey]:
    """Every key, newest first (revoked ones too: they explain old appeals' ``api_key_id``)."""
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))


def revoke_key(key_id: int, *, now: datetime) -> ApiKey:
    """Revoke a key at once (idempotent: a revoked key stays revoked at its first time)."""
    row = db.session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("api_key_not_found")
    if row.active or row.revoked_at is None:
        row.active = False
        row.revoked_at = row.revoked_at or now
    db.session.flush()
    return row


def authenticate(key: str | None, *, now: datetime) -> ApiKey | None:
    """The active key row for a presented key, or None (missing, unknown, revoked)."""
    if not key or len(key) > 256:
        return None
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or not row.active or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row
