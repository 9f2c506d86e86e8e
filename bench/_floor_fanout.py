"""The fan-out FLOOR: a bare python-socketio server, no Jauap code, no database.

``bench/fanout.py --floor`` serves ``_floor_fanout:app`` with the production command
(``gunicorn -k gevent -w 1``; ``async_mode="gevent"``, the same engine.io websocket driver as
Jauap's Flask-SocketIO) and drives it with the same client harness as Jauap:

* connect: ``auth={"token": <group>}`` where the group is ``centre`` or a unit ``U1``..``U6``; the
  connection joins ``centre`` or ``sector:<unit>`` (one room per unit, as in the Turkestan set:
  one sector per unit), so the 500 clients sit in 7 rooms like Jauap's;
* ``echo`` -> ``{"ok": True, "data": data}``: the round-trip baseline, as Jauap's handler;
* ``bench.emit`` ``{"rooms": [...], "seq": n}`` -> ONE emit of an appeal-shaped ``appeal.assigned``
  payload (the size of Jauap's) to those rooms, skipping the caller, stamped with the server's
  ``time.time()`` just before ``emit`` (``bench_emit_t``), as Jauap's instrumented app does.

Nothing here can be cheaper in Jauap: whatever Jauap does per message on top (authentication,
rooms from the database, intake) only adds to these figures.
"""

from __future__ import annotations

import time

import socketio

# The shape and size of Jauap's appeal.assigned payload (server/realtime/publish.py event_payload).
PAYLOAD = {
    "id": 0, "kind": "appeal.assigned", "at": "2026-11-24T12:00:00+00:00", "from_status": "routed",
    "to_status": "assigned",
    "appeal": {"id": 0, "reg_no": "TRK-2026-000000", "type": "complaint", "topic": "roads", "status": "assigned",
               "sector": "S1", "unit": "U1", "assignee_id": 1, "lon": 68.2712, "lat": 43.2975,
               "due_at": "2026-11-27T12:00:00+00:00"},
    "data": {"assignee_id": 1, "open_assignments": 3, "distance_m": 812.4, "rule": "fewest_open_then_nearest"},
}
GROUPS = {"centre", *(f"U{n}" for n in range(1, 7))}

sio = socketio.Server(async_mode="gevent", logger=False, engineio_logger=False)


def probe(environ, start_response):
    """Every other path (the bench waits on ``/readyz``): 200."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = socketio.WSGIApp(sio, probe)


@sio.event
def connect(sid, environ, auth=None):
    """Accept a known group; join its room (``centre`` or ``sector:<unit>``)."""
    group = auth.get("token") if isinstance(auth, dict) else None
    if group not in GROUPS:
        raise socketio.exceptions.ConnectionRefusedError("unauthorized")
    sio.enter_room(sid, "centre" if group == "centre" else f"sector:{group}")


@sio.on("echo")
def echo(sid, data=None):
    """Round-trip probe."""
    return {"ok": True, "data": data}


@sio.on("bench.emit")
def bench_emit(sid, data):
    """One appeal-shaped event to ``data['rooms']``, never to the caller."""
    seq = int(data["seq"])
    payload = {**PAYLOAD, "id": -seq, "appeal": {**PAYLOAD["appeal"], "id": -seq}, "bench_emit_t": time.time()}
    sio.emit("appeal.assigned", payload, to=list(data["rooms"]), skip_sid=sid)
    return {"ok": True}
