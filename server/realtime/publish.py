"""Emit appeal events to their rooms, only after the transaction that wrote them has committed.

A single event goes out as a message named after its AppealEvent kind, with the event as the
payload. Several events of one commit bound for the same rooms (an intake's ``registered``,
``routed``, ``assigned``) go out as ONE message ``appeal.events`` with ``{"events": [...]}``,
oldest first: fan-out costs per message and recipient, so this is a third of the work.
Every event carries its id, so a client that reconnects asks
``GET /api/v1/events?after=<last id>`` to fill the gap. Payloads carry no personal data
(no citizen name or phone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, AppealEvent, Sector
from server.realtime.rooms import rooms_for_appeal, sector_codes_of_unit

log = logging.getLogger(__name__)
BATCH = "appeal.events"  # the message carrying several events: {"events": [payload, ...]}
_PREFETCH = "jauap_live_unit_rooms"


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
            "sla": appeal.sla_state,  # stored by the SLA tick / at close; None until then
        },
        "data": {k: v for k, v in (event.data or {}).items() if k not in ("answer",)},
    }


def prefetch_rooms(sector: Sector) -> None:
    """Look up the sector rooms of ``sector``'s unit now, for ``prepare`` later in this transaction.

    Intake calls it with the sector it just located (so the set version is known, no query for
    it) before taking the registration number, so the counter row's lock is not held over it.
    """
    session = db.session()
    txn = session.get_transaction()
    memo = session.info.get(_PREFETCH)
    if memo is None or memo[0] is not txn:
        memo = session.info[_PREFETCH] = (txn, {})
    memo[1][sector.unit_id] = list(session.scalars(
        select(Sector.code).where(Sector.version == sector.version, Sector.unit_id == sector.unit_id)))


def _codes_of_unit(unit_id: int | None) -> list[str]:
    session = db.session()
    memo = session.info.get(_PREFETCH)
    if memo is not None and memo[0] is session.get_transaction() and unit_id in memo[1]:
        return memo[1][unit_id]
    return sector_codes_of_unit(unit_id)


def prepare(events: list[AppealEvent]) -> list[Outgoing]:
    """Build messages before commit (objects are loaded), to emit after it.

    The rooms of an appeal are looked up once, not once per event; consecutive events
    bound for the same rooms are merged into one ``appeal.events`` message.
    """
    rooms_memo: dict[tuple, list[str]] = {}
    groups: list[tuple[list[str], list[AppealEvent], list[dict]]] = []
    for event in events:
        appeal = event.appeal
        previous_unit = (event.data or {}).get("from_unit_id")
        extra = (previous_unit,) if previous_unit else ()
        key = (appeal.unit_id, appeal.assignee_id, extra)
        if key not in rooms_memo:
            rooms_memo[key] = rooms_for_appeal(appeal, extra, codes_of_unit=_codes_of_unit)
        rooms = rooms_memo[key]
        payload = event_payload(event, appeal)
        if groups and groups[-1][0] == rooms:
            groups[-1][1].append(event)
            groups[-1][2].append(payload)
        else:
            groups.append((rooms, [event], [payload]))
    out = []
    for rooms, group, payloads in groups:
        if len(group) == 1:
            out.append(Outgoing(group[0].kind, payloads[0], rooms))
        else:
            out.append(Outgoing(BATCH, {"events": payloads}, rooms))
    return out


def message_events(kind: str, payload: dict) -> list[tuple[str, dict]]:
    """The (kind, event payload) pairs one live message carries (the client side of the format)."""
    if kind == BATCH:
        return [(p["kind"], p) for p in payload["events"]]
    return [(kind, payload)]


def emit_all(messages: list[Outgoing]) -> None:
    """Emit prepared messages; a failure to emit never undoes the committed work."""
    if not messages:
        return
    server = current_app.extensions["jauap_sio_server"]
    for msg in messages:
        try:
            server.emit(msg.kind, msg.payload, to=msg.rooms, namespace="/")
        except Exception:
            log.exception("emit failed for %s", [p["id"] for _k, p in message_events(msg.kind, msg.payload)])
