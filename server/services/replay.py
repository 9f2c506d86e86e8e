"""Exactly-once field actions: each client UUID is acted on once, and its answer is kept.

The field app's offline outbox replays queued requests, and a request whose reply
was lost is sent again; both carry the same ``Idempotency-Key`` (a UUID the device
chose). :func:`perform_once` runs the action once, stores the status code, the
JSON answer and a hash of the request in a :class:`ClientAction` row **in the same
transaction** as the change, and hands that stored answer to every repeat. The
same UUID with a different request (or from another person) is refused.

Concurrency (N copies of one request at once, e.g. a flaky network):

* PostgreSQL: the appeal row is locked (``SELECT ... FOR UPDATE``) before the
  UUID is looked up again, so the copies queue on the row; the first acts and
  commits, each later one then sees its ClientAction and replays it.
* SQLite: every transaction is ``BEGIN IMMEDIATE`` (server.database), so writers
  are already serialised.
* Either way, a unique-key clash on ``client_uuid`` means someone else won: roll
  back and answer with what they stored.

Only 2xx answers are stored: a refused step changed nothing and may be retried.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.extensions import db
from server.models import Appeal, AppealEvent, ClientAction, Staff
from server.services.errors import Unprocessable


@dataclass
class Outcome:
    """An action's answer: HTTP status, JSON body, the events to publish, and whether it is a replay."""

    status: int
    body: dict
    events: list[AppealEvent] = field(default_factory=list)
    replayed: bool = False


def parse_client_uuid(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` as a canonical lower-case UUID; None when absent; ValueError when not a UUID."""
    if raw is None:
        return None
    return str(uuid.UUID(raw.strip()))


def fingerprint(**parts) -> str:
    """A stable hash of a request's meaning (the caller names the parts: operation, appeal, body...)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(client_uuid: str, request_hash: str) -> Outcome | None:
    """The stored answer for ``client_uuid`` (a replay), None if it is new.

    Raises Unprocessable ``idempotency_mismatch`` when the UUID was used for another request.
    """
    action = db.session.scalar(select(ClientAction).where(ClientAction.client_uuid == client_uuid))
    if action is None:
        return None
    if action.request_hash != request_hash:
        raise Unprocessable("idempotency_mismatch", field="Idempotency-Key")
    # A created resource (201) already exists on a repeat: say so with 200 and the same body.
    status = 200 if action.status_code == 201 else action.status_code
    return Outcome(status=status, body=action.response, replayed=True)


def lock_appeal(appeal_id: int) -> None:
    """Lock the appeal row until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(Appeal.id).where(Appeal.id == appeal_id).with_for_update())


def perform_once(client_uuid: str | None, staff: Staff, appeal_id: int, request_hash: str,
                 work: Callable[[], Outcome], now: datetime) -> Outcome:
    """Run ``work`` unless ``client_uuid`` was already acted on; store a 2xx answer with the change.

    ``work`` takes the action (raising ServiceError to refuse it) and returns its
    Outcome, built before the commit. Without a UUID it simply runs. The session is
    flushed, not committed: the caller commits (and then publishes the events).
    """
    if client_uuid is None:
        return work()
    if (prior := lookup(client_uuid, request_hash)) is not None:
        return prior
    lock_appeal(appeal_id)
    # Another copy may have committed while this one waited for the lock.
    if (prior := lookup(client_uuid, request_hash)) is not None:
        return prior
    outcome = work()
    if not 200 <= outcome.status < 300:
        return outcome
    try:
        with db.session.begin_nested():
            db.session.add(ClientAction(client_uuid=client_uuid, staff_id=staff.id, appeal_id=appeal_id,
                                        request_hash=request_hash, status_code=outcome.status,
                                        response=outcome.body, created_at=now))
    except IntegrityError:
        # Someone else committed this UUID first (without the row lock: another appeal, or SQLite
        # without BEGIN IMMEDIATE). Undo everything this request did and answer as a repeat.
        db.session.rollback()
        prior = lookup(client_uuid, request_hash)
        if prior is None:
            raise
        return prior
    return outcome
