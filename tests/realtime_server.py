"""A real Jauap server (werkzeug, threaded, Socket.IO) on a loopback port, for socket tests."""

from __future__ import annotations

import threading
import time

import socketio as sio_client
from werkzeug.serving import make_server


class LiveServer:
    """Serve ``app`` on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(timeout=5)


class Listener:
    """A Socket.IO client that records every appeal event it receives."""

    def __init__(self, url: str, token: str | None, kinds=("appeal.registered", "appeal.routed", "appeal.assigned",
                                                          "appeal.reassigned", "appeal.moved", "appeal.accepted",
                                                          "appeal.unrouted", "appeal.escalated", "appeal.declined")):
        self.url = url
        self.token = token
        self.events: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = sio_client.Client(reconnection=False)
        for kind in kinds:
            self.client.on(kind, self._recorder(kind))
        self.client.on("appeal.events", self._record_batch)  # several events of one commit in one message
        self.disconnected = threading.Event()
        self.client.on("disconnect", lambda *a: self.disconnected.set())

    def _recorder(self, kind):
        def record(payload):
            with self.lock:
                self.events.append((kind, payload))
        return record

    def _record_batch(self, message):
        with self.lock:
            self.events.extend((payload["kind"], payload) for payload in message["events"])

    def connect(self):
        self.client.connect(self.url, auth={"token": self.token} if self.token else None,
                            transports=["websocket"], wait_timeout=5)
        return self

    def ids(self) -> set[int]:
        with self.lock:
            return {p["id"] for _k, p in self.events}

    def appeal_ids(self) -> set[int]:
        with self.lock:
            return {p["appeal"]["id"] for _k, p in self.events}

    def wait_for(self, predicate, timeout=5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if predicate(list(self.events)):
                    return True
            time.sleep(0.02)
        return False

    def close(self):
        # The websocket closing handshake waits ~3 s with werkzeug; close in the background instead.
        if self.client.connected:
            threading.Thread(target=self.client.disconnect, daemon=True).start()


def sector_points(app) -> dict[str, tuple[float, float]]:
    """One interior (lon, lat) per sector code of the loaded set (a point that routes to that sector)."""
    from geoalchemy2.shape import to_shape
    from sqlalchemy import select

    from server.extensions import db
    from server.models import Sector

    with app.app_context():
        points = {}
        for s in db.session.scalars(select(Sector)):
            p = to_shape(s.geom).representative_point()
            points[s.code] = (p.x, p.y)
        db.session.remove()
    return points
