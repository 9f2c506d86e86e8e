"""Small helpers shared by the views."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from server.api.errors import ApiError
from server.api.messages import message
from server.extensions import db
from server.models import AppealEvent, Staff
from server.models.types import utcnow
from server.realtime import publish
from server.services import push, replies
from server.services.replay import parse_client_uuid


def viewer() -> Staff:
    """The logged-in staff member (the policy check has already required one)."""
    return current_user._get_current_object()


def commit(events: list[AppealEvent] | None = None) -> None:
    """Commit the unit of work (with the pushes ``events`` cause), then (and only then) publish them live."""
    if events:
        # Same transaction as the events: a rolled-back change queues no push.
        push.queue_for_events(events, utcnow())
        replies.queue_for_events(events, utcnow())  # the citizen's message on the channel they came from
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


def client_uuid() -> str | None:
    """The Idempotency-Key header of a field action: a UUID (canonical, lower case), or None when absent."""
    try:
        return parse_client_uuid(request.headers.get("Idempotency-Key"))
    except ValueError:
        raise ApiError(400, "bad_client_uuid", [{"field": "Idempotency-Key", "code": "bad_client_uuid",
                                                  "message": message("bad_client_uuid")}]) from None


CLIENT_UUID_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The UUID the field app gave this action. A repeat (offline replay, retry after a lost reply) "
    "gets the stored answer and never acts twice; the same UUID with another request is refused with 422 "
    "idempotency_mismatch.",
    "schema": {"type": "string", "format": "uuid"},
}


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A client-chosen key (1-128 visible ASCII chars). A retry with the same key and body returns "
    "the first result; the same key with another body is refused with 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
}
