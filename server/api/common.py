"""Small helpers shared by the views."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from server.api.errors import ApiError
from server.api.messages import message
from server.extensions import db
from server.models import AppealEvent, Staff
from server.realtime import publish


def viewer() -> Staff:
    """The logged-in staff member (the policy check has already required one)."""
    return current_user._get_current_object()


def commit(events: list[AppealEvent] | None = None) -> None:
    """Commit the unit of work, then (and only then) publish ``events`` live."""
    messages = publish.prepare(events) if events else []
    db.session.commit()
    publish.emit_all(messages)


def idempotency_key() -> str | None:
    """The Idempotency-Key header, validated (visible ASCII, 1-128 chars), or None."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not (1 <= len(key) <= 128) or not all(33 <= ord(c) <= 126 for c in key):
        raise ApiError(400, "bad_idempotency_key", [{"field": "Idempotency-Key", "code": "bad_idempotency_key",
                                                      "message": message("bad_idempotency_key")}])
    return key


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A client-chosen key (1-128 visible ASCII chars). A retry with the same key and body returns "
    "the first result; the same key with another body is refused with 422.",
    "schema": {"type": "string", "maxLength": 128},
}
