"""Socket.IO handlers only: authenticate at connect, join server-chosen rooms, check every event.

Flask-SocketIO runs no ``before_request`` for socket events, so each handler
checks its own permission against ``SOCKET_POLICY``.
"""

from __future__ import annotations

import hashlib
from functools import wraps

from flask import request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room

from server.extensions import db, socketio
from server.models.types import utcnow
from server.realtime import connections
from server.realtime.rooms import rooms_for
from server.services import staff as staff_service

# event -> roles allowed to send it
SOCKET_POLICY: dict[str, frozenset[str]] = {
    "echo": frozenset({"admin", "operator", "dispatcher", "inspector", "qc_analyst", "analyst", "methodologist",
                       "pr_manager", "unit_head", "field_staff"}),
    "position": frozenset({"field_staff", "unit_head"}),
}


def _authenticate(auth):
    token = auth.get("token") if isinstance(auth, dict) else None
    if isinstance(token, str) and token:
        staff = staff_service.staff_for_token(token, utcnow())
        return staff, (hashlib.sha256(token.encode()).hexdigest() if staff else None)
    if current_user and current_user.is_authenticated:
        return current_user._get_current_object(), None
    return None, None


def on_connect(auth=None):
    """Accept only an authenticated staff member; put the connection in its rooms."""
    staff, token_hash = _authenticate(auth)
    if staff is None:
        raise ConnectionRefusedError("unauthorized")
    for room in rooms_for(staff):
        join_room(room)
    connections.register(request.sid, staff, token_hash)
    db.session.remove()
    return True


def on_disconnect(*_args):
    """Forget the connection."""
    connections.forget(request.sid)


_HANDLERS: dict[str, object] = {}


def socket_event(name: str):
    """Declare a handler that runs only for connections whose role the policy allows."""

    def decorate(handler):
        @wraps(handler)
        def checked(*args):
            conn = connections.get(request.sid)
            if conn is None or conn.role not in SOCKET_POLICY.get(name, frozenset()):
                return {"ok": False, "error": "forbidden"}
            try:
                return handler(conn, *args)
            finally:
                db.session.remove()

        _HANDLERS[name] = checked
        return checked

    return decorate


def register_handlers(server) -> None:
    """Attach connect/disconnect and every declared event to ``server`` (one app's Socket.IO server)."""
    socketio.on_event("connect", on_connect)
    socketio.on_event("disconnect", on_disconnect)
    for name, handler in _HANDLERS.items():
        socketio.on_event(name, handler)
    missing = set(SOCKET_POLICY) - set(_HANDLERS)
    assert not missing, f"socket events in the policy without a handler: {missing}"


@socket_event("echo")
def on_echo(conn, data=None):
    """Round-trip probe (the fan-out benchmark's baseline)."""
    return {"ok": True, "data": data}


@socket_event("position")
def on_position(conn, data=None):
    """A field device reports where it is (rate-limited like the HTTP endpoint)."""
    from server.api.errors import field_errors
    from server.schemas import PositionIn
    from server.services import positions
    from server.services.errors import ServiceError

    try:
        body = PositionIn.model_validate(data if isinstance(data, dict) else {})
        positions.report_position(conn.staff_id, body, utcnow())
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        return {"ok": False, "error": exc.code}
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        return {"ok": False, "error": "validation_failed", "fields": field_errors(exc) if hasattr(exc, "errors")
                else []}
    return {"ok": True}
