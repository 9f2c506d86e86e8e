"""Emit appeal events to their rooms, only after the transaction that wrote them has committed.

Every message is named after its AppealEvent kind and carries the event id, so a
client that reconnects asks ``GET /api/v1/events?after=<last id>`` to fill the gap.
Payloads carry no personal data (no citizen name or phone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from geoalchemy2.shape import to_shape

from server.models import Appeal, AppealEvent
from server.realtime.rooms import rooms_for_appeal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One message ready to emit: its name, payload and rooms."""

    kind: str
    payload: dict
    rooms: list[str]


def event_payload(event: AppealEvent, appeal: Appeal) -> dict:
    """The public-to-staff shape of an event (the same in live messages and in /events)."""
    point = to_shape(appeal.location) if appeal.location is not None else None
    return {
        "id": event.id,
        "kind": event.kind,
        "at": event.created_at.isoformat(),
        "from_status": event.from_status,
        "to_status": event.to_status,
        "appeal": {
            "id": appeal.id,
            "reg_no": appeal.reg_no,
            "type": appeal.type,
            "topic": appeal.topic_code,
            "status": appeal.status,
            "sector": appeal.sector.code if appeal.sector else None,
            "unit": appeal.unit.code if appeal.unit else None,
            "assignee_id": appeal.assignee_id,
            "lon": point.x if point else None,
            "lat": point.y if point else None,
            "due_at": appeal.due_at.isoformat() if appeal.due_at else None,
        },
        "data": {k: v for k, v in (event.data or {}).items() if k not in ("answer",)},
    }


def prepare(events: list[AppealEvent]) -> list[Outgoing]:
    """Build messages before commit (objects are loaded), to emit after it."""
    out = []
    for event in events:
        appeal = event.appeal
        previous_unit = (event.data or {}).get("from_unit_id")
        extra = (previous_unit,) if previous_unit else ()
        out.append(Outgoing(event.kind, event_payload(event, appeal), rooms_for_appeal(appeal, extra)))
    return out


def emit_all(messages: list[Outgoing]) -> None:
    """Emit prepared messages; a failure to emit never undoes the committed work."""
    if not messages:
        return
    server = current_app.extensions["jauap_sio_server"]
    for msg in messages:
        try:
            server.emit(msg.kind, msg.payload, to=msg.rooms, namespace="/")
        except Exception:
            log.exception("emit failed for event %s", msg.payload.get("id"))
