"""This process's live connections, and the sweep that cuts the ones whose access has changed.

A connection remembers who it authenticated as (and with which token). Every
``JAUAP_CONNECTION_SWEEP_S`` seconds one query re-reads those people and tokens;
a connection whose staff member was disabled, moved to another unit, changed
role, logged out everywhere (epoch bump) or whose token was revoked or expired is
disconnected. The client reconnects, if it still may, and gets its new rooms.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import select

from server.extensions import db, socketio
from server.models import ApiToken, Staff
from server.models.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connection:
    """What a connection authenticated as."""

    staff_id: int
    role: str
    unit_id: int | None
    auth_epoch: int
    token_hash: str | None


class Registry:
    """The live connections of one app in this process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: dict[str, Connection] = {}


def _registry(app: Flask | None = None) -> Registry:
    app = app or current_app
    return app.extensions.setdefault("jauap_connections", Registry())


def register(sid: str, staff: Staff, token_hash: str | None) -> None:
    """Remember a new connection."""
    reg = _registry()
    with reg.lock:
        reg.items[sid] = Connection(staff.id, staff.role, staff.unit_id, staff.auth_epoch, token_hash)


def forget(sid: str, app: Flask | None = None) -> Connection | None:
    """Drop a closed connection."""
    reg = _registry(app)
    with reg.lock:
        return reg.items.pop(sid, None)


def get(sid: str) -> Connection | None:
    """The connection's identity, if it is registered here."""
    reg = _registry()
    with reg.lock:
        return reg.items.get(sid)


def stale_sids(now=None) -> list[str]:
    """Connections whose person or token no longer grants what they had at connect time."""
    reg = _registry()
    with reg.lock:
        snapshot = dict(reg.items)
    if not snapshot:
        return []
    now = now or utcnow()
    staff_ids = {c.staff_id for c in snapshot.values()}
    people = {s.id: s for s in db.session.scalars(select(Staff).where(Staff.id.in_(staff_ids)))}
    hashes = {c.token_hash for c in snapshot.values() if c.token_hash}
    tokens = {}
    if hashes:
        tokens = {t.token_hash: t for t in db.session.scalars(select(ApiToken).where(ApiToken.token_hash.in_(hashes)))}
    stale = []
    for sid, conn in snapshot.items():
        person = people.get(conn.staff_id)
        if (
            person is None
            or not person.active
            or person.auth_epoch != conn.auth_epoch
            or person.unit_id != conn.unit_id
            or person.role != conn.role
        ):
            stale.append(sid)
            continue
        if conn.token_hash:
            token = tokens.get(conn.token_hash)
            if token is None or token.revoked_at is not None or token.expires_at <= now:
                stale.append(sid)
    return stale


def sweep_once(app: Flask) -> int:
    """Disconnect every stale connection of this process; returns how many were cut."""
    with app.app_context():
        try:
            sids = stale_sids()
        finally:
            db.session.remove()
    server = app.extensions["jauap_sio_server"]
    for sid in sids:
        forget(sid, app)
        server.disconnect(sid, namespace="/")
    if sids:
        log.info("cut %d connection(s) whose access changed", len(sids))
    return len(sids)


def start_sweeper(app: Flask) -> None:
    """Run ``sweep_once`` in the background for the life of the process."""
    interval = app.config["JAUAP_CONNECTION_SWEEP_S"]
    if interval <= 0 or app.extensions.get("jauap_sweeper"):
        return
    app.extensions["jauap_sweeper"] = True

    def loop():
        while True:
            socketio.sleep(interval)
            try:
                sweep_once(app)
            except Exception:
                log.exception("connection sweep failed")

    socketio.start_background_task(loop)
