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
        client_manager=_manager(app),  # None (in-process) without Redis; never a previous app's manager
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


def _manager(app: Flask):
    """The Redis message queue shared by several processes, with short timeouts.

    A Redis that hangs (rather than refusing connections) must not hang intake: the
    appeal is already committed when we emit, so emits give up after a second and
    realtime degrades while data stays safe. Redis pub/sub ignores the database
    number, so the channel name separates deployments sharing one Redis.
    """
    url = app.config["JAUAP_REDIS_URL"]
    if not url:
        return None
    import socket as _socket

    import socketio as _sio

    keepalive = {}
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(_socket, name):
            keepalive[getattr(_socket, name)] = value
    return _sio.RedisManager(url, channel=app.config["JAUAP_REDIS_CHANNEL"], redis_options={
        "socket_connect_timeout": 0.5, "socket_timeout": 0.5, "socket_keepalive": True,
        "socket_keepalive_options": keepalive})


def sio_server(app: Flask):
    """The python-socketio server of ``app``."""
    return app.extensions["jauap_sio_server"]
