"""A local stand-in for the providers' HTTP edge (Telegram Bot API, Graph API, an SMS gateway, a CDN).

A threaded ``http.server`` on 127.0.0.1 (random port) that records every request and answers as the
providers document:

* ``POST /bot<token>/<method>`` -> ``{"ok": true, "result": {...}}`` (401 for another token);
  ``GET /bot<token>/getFile?file_id=`` -> the file's ``file_path``; ``GET /file/bot<token>/<path>``
  -> the bytes registered with :meth:`ProviderStub.add_telegram_file`;
* ``POST /v21.0/<phone-id>/messages`` and ``POST /v21.0/me/messages`` -> a message id (401 without
  the right bearer token); ``POST /v21.0/<phone-id>/media`` -> a media id;
  ``GET /v21.0/<media-id>`` -> ``{"url": <this server>/wa-media/<id>, ...}``; ``GET /wa-media/<id>``
  -> the bytes (bearer required, like lookaside.fbsbx.com);
* ``GET /cdn/<name>`` -> bytes (an Instagram/Messenger attachment URL);
* ``POST /sms`` -> 200.

``script(path_suffix, status, body)`` makes the next request whose path ends so get that answer instead.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TELEGRAM_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
GRAPH_TOKEN = "EAAGm0PX4ZCpsBAKZCtestwhatsapptoken"
PAGE_TOKEN = "EAAGm0PX4ZCpsBAPtestpagetoken"
PHONE_ID = "106540352242922"


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        """The body as JSON (None when it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class ProviderStub:
    """The server and what it saw (see the module docstring)."""

    requests: list[Seen] = field(default_factory=list)
    telegram_files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    wa_media: dict[str, bytes] = field(default_factory=dict)
    cdn: dict[str, bytes] = field(default_factory=dict)
    scripted: deque = field(default_factory=deque)

    def __enter__(self) -> ProviderStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(method, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
                stub.requests.append(seen)
                for i, (suffix, status, answer) in enumerate(stub.scripted):
                    if parts.path.endswith(suffix):
                        del stub.scripted[i]
                        return self._answer(status, answer)
                status, answer, ctype = stub.route(seen)
                return self._answer(status, answer, ctype)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def graph(self) -> str:
        """The Graph API base URL on this stub."""
        return f"{self.base}/v21.0"

    def script(self, path_suffix: str, status: int, body) -> None:
        """Answer the next request whose path ends with ``path_suffix`` with ``status`` and ``body``."""
        self.scripted.append((path_suffix, status, body))

    def add_telegram_file(self, file_id: str, data: bytes, path: str = "photos/file_0.jpg") -> None:
        """Serve ``data`` as the Telegram file ``file_id``."""
        self.telegram_files[file_id] = (path, data)

    def sent(self, path_suffix: str) -> list[Seen]:
        """The requests whose path ends with ``path_suffix``, in order."""
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- the default answers ---------------------------------------------------------------------

    def route(self, seen: Seen):
        path = seen.path
        auth = seen.headers.get("Authorization", "")
        if path.startswith("/bot"):
            token, _, method = path[4:].partition("/")
            if token != TELEGRAM_TOKEN:
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, "application/json"
            if method == "getFile":
                file_id = (seen.query.get("file_id") or [""])[0]
                if file_id not in self.telegram_files:
                    return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}, \
                        "application/json"
                fpath, data = self.telegram_files[file_id]
                result = {"file_id": file_id, "file_unique_id": "AQADx", "file_size": len(data), "file_path": fpath}
                return 200, {"ok": True, "result": result}, "application/json"
            return 200, {"ok": True, "result": {"message_id": len(self.requests), "date": 1764000000}}, \
                "application/json"
        if path.startswith("/file/bot"):
            token, _, fpath = path[len("/file/bot"):].partition("/")
            for _fid, (p, data) in self.telegram_files.items():
                if token == TELEGRAM_TOKEN and p == fpath:
                    return 200, data, "image/jpeg"
            return 404, {"ok": False}, "application/json"
        if path.startswith("/v21.0/"):
            if auth not in (f"Bearer {GRAPH_TOKEN}", f"Bearer {PAGE_TOKEN}"):
                return 401, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                       "code": 190}}, "application/json"
            rest = path[len("/v21.0/"):]
            if rest == f"{PHONE_ID}/messages":
                to = (seen.json or {}).get("to")
                return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": f"wamid.OUT{len(self.requests)}"}]}, "application/json"
            if rest == f"{PHONE_ID}/media":
                return 200, {"id": "990000000000001"}, "application/json"
            if rest == "me/messages":
                return 200, {"recipient_id": "x", "message_id": f"m_OUT{len(self.requests)}"}, "application/json"
            if rest in self.wa_media:
                data = self.wa_media[rest]
                return 200, {"messaging_product": "whatsapp", "url": f"{self.base}/wa-media/{rest}",
                             "mime_type": "image/jpeg", "sha256": "x", "file_size": len(data), "id": rest}, \
                    "application/json"
            return 404, {"error": {"message": "Unsupported get request.", "code": 100}}, "application/json"
        if path.startswith("/wa-media/"):
            if auth != f"Bearer {GRAPH_TOKEN}":
                return 401, b"", "text/plain"
            data = self.wa_media.get(path[len("/wa-media/"):])
            return (200, data, "image/jpeg") if data is not None else (404, b"", "text/plain")
        if path.startswith("/cdn/"):
            data = self.cdn.get(path[len("/cdn/"):])
            return (200, data, "image/jpeg") if data is not None else (404, b"", "text/plain")
        if path == "/sms":
            return 200, {"status": "queued"}, "application/json"
        return 404, {"error": "not found"}, "application/json"
