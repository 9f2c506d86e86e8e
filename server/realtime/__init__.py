"""Live events over Socket.IO: authenticated connections, rooms from the database, emit after commit."""

from __future__ import annotations

from flask import Flask

from server.extensions import socketio


def init_realtime(app: Flask) -> None:
    """Bind Flask-SocketIO (threading by default; gevent in production; Redis queue when configured)."""
    origins = app.config["JAUAP_CORS_ORIGINS"] or None  # None: same origin only, never "*"
    socketio.init_app(
        app,
        async_mode=app.config["JAUAP_ASYNC_MODE"],
        message_queue=app.config["JAUAP_REDIS_URL"],
        cors_allowed_origins=origins,
        logger=False,
        engineio_logger=False,
    )
    # Several apps can live in one process (tests, CLI): keep this app's own server, and attach the
    # handlers to it explicitly (Flask-SocketIO's decorators bind only to the server current at import).
    app.extensions["jauap_sio_server"] = socketio.server
    from server.realtime import events
    from server.realtime.connections import start_sweeper

    events.register_handlers(socketio.server)
    start_sweeper(app)


def sio_server(app: Flask):
    """The python-socketio server of ``app``."""
    return app.extensions["jauap_sio_server"]
