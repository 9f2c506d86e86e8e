"""A small TCP proxy that can take a server "down" and bring it back, for fault tests.

Put it between a process and a shared service (PostgreSQL) and point the process at the
proxy's port: :meth:`TcpProxy.stop` then looks, to that process only, like the database
stopping - every open connection is cut and new ones are refused (the listening socket is
closed: ``ECONNREFUSED``) - while every other user of the real service carries on.
:meth:`TcpProxy.start` listens again on the same port. :meth:`TcpProxy.freeze` is the other
failure: a database that hangs - connections are still accepted, but nothing is forwarded
either way until :meth:`TcpProxy.thaw`.

Threads only: one accept loop, and per connection one pump thread each way.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` until stopped."""

    def __init__(self, target_host: str, target_port: int, port: int = 0, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self.connections = 0  # accepted since creation
        self._flowing = threading.Event()  # cleared while frozen: pumps and new connections wait
        self._flowing.set()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        """Listen (again) and forward new connections; returns self."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            deadline = time.monotonic() + 10
            while True:
                try:
                    listener.bind((self.host, self.port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        listener.close()
                        raise
                    time.sleep(0.05)
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._accepter = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True,
                                              name=f"tcp-proxy-{self.port}")
            self._accepter.start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one (both sides see the connection drop)."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in open_sockets:
            _cut(sock)
        if self._accepter is not None:
            self._accepter.join(timeout=5)
            self._accepter = None

    def freeze(self) -> None:
        """Hang: keep accepting connections, forward nothing either way (kernels still ACK)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again what waited, and new connections."""
        self._flowing.set()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return  # the listener was closed: stopped
            while not self._flowing.wait(0.1):  # frozen: the client waits on an accepted connection
                if self._listener is not listener:
                    _cut(client)
                    return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _cut(client)
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    _cut(client)
                    _cut(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _cut(src)
            _cut(dst)


def _cut(sock: socket.socket) -> None:
    """Close at once with a reset (SO_LINGER 0), as a dying server's kernel would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
