"""A local Web Push service for tests and the benchmark: it receives real pushes and checks them.

Like a browser, :meth:`PushEndpoint.subscribe` makes a P-256 key pair and a 16-byte auth
secret and hands out ``{"endpoint", "keys": {"p256dh", "auth"}}``. Like a push service,
the server (a threaded ``http.server`` on 127.0.0.1, random port, HTTP/1.1 keep-alive):

* verifies the VAPID ``Authorization: vapid t=<JWT>, k=<key>`` header independently of the
  sender's libraries: ES256 signature checked with ``k`` (and ``k`` equal to the expected
  server key, when given), ``aud`` = this endpoint's origin, ``exp`` in the future and at
  most 24 h ahead, a ``sub`` contact; a bad token gets 403;
* decrypts the aes128gcm body with the subscription's private key and auth secret
  (``http_ece``), and records the plaintext;
* answers 201, or what a test scripted for that subscription (404, 410, 429 with
  Retry-After, 500 ...); 404 for an unknown subscription, 410 for one the browser dropped.

Run as a process for the benchmark (``python -m tests.push_endpoint --no-verify``): it prints
``PORT <n>``, accepts any ``/push/<id>`` with 201 without decrypting, and answers
``GET /count`` with the number of pushes received.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64u(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VapidError(ValueError):
    """The Authorization header is not a valid VAPID token for this endpoint."""


def verify_vapid(header: str, audience: str, now: float, expected_key: str | None = None) -> dict:
    """Check a ``vapid t=…, k=…`` header; return the JWT claims or raise VapidError."""
    if not header.lower().startswith("vapid "):
        raise VapidError("not a vapid authorization")
    params = {}
    for part in header[6:].split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip()] = value.strip()
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        raise VapidError("t and k are required")
    if expected_key is not None and key != expected_key:
        raise VapidError("signed with another key")
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        head = json.loads(unb64u(head_b64))
        claims = json.loads(unb64u(claims_b64))
        sig = unb64u(sig_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
    except ValueError as exc:
        raise VapidError(f"malformed token: {exc}") from None
    if head.get("alg") != "ES256" or len(sig) != 64:
        raise VapidError("not ES256")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidError("bad signature") from None
    if claims.get("aud") != audience:
        raise VapidError(f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise VapidError("exp must be in the future and within 24 h")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
        raise VapidError("sub must be a contact")
    return claims


@dataclass
class TestSubscription:
    """A browser-side subscription: what the page sends to the server, plus the secrets to decrypt."""

    __test__ = False  # not a pytest class

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @property
    def p256dh(self) -> str:
        """The public key, base64url uncompressed point (PushSubscription.getKey('p256dh'))."""
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint)
        return b64u(raw)

    @property
    def auth(self) -> str:
        """The auth secret, base64url."""
        return b64u(self.auth_secret)

    def as_json(self) -> dict:
        """``PushSubscription.toJSON()``."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def make_subscription(origin: str) -> TestSubscription:
    """A fresh browser-like subscription for the push service at ``origin``."""
    sid = b64u(os.urandom(18))
    return TestSubscription(sid, f"{origin}/push/{sid}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16))


@dataclass
class Received:
    """One push the service accepted (decrypted)."""

    subscription_id: str
    plaintext: bytes
    headers: dict
    claims: dict

    @property
    def json(self) -> dict:
        """The payload, parsed."""
        return json.loads(self.plaintext)


@dataclass
class _State:
    subscriptions: dict[str, TestSubscription] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    scripts: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    count: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real push service

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        ep: PushEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        if self.path == "/count":
            self._answer(200, str(ep.count).encode())
        else:
            self._answer(404)

    def do_POST(self):
        ep: PushEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.startswith("/push/"):
            self._answer(404)
            return
        ep.handle(self.path[len("/push/"):], dict(self.headers.items()), body, self._answer)


class PushEndpoint:
    """The local push service. Use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(self, *, verify: bool = True, expected_key: str | None = None, delay_s: float = 0.0):
        self.verify = verify
        self.expected_key = expected_key
        self.delay_s = delay_s
        self._state = _State()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> PushEndpoint:
        """Listen on a random loopback port in a background thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.endpoint = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-endpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PushEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (the VAPID audience)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # browser side
    def subscribe(self) -> TestSubscription:
        """A new subscription, as ``PushManager.subscribe()`` would make it."""
        sub = make_subscription(self.origin)
        with self._lock:
            self._state.subscriptions[sub.id] = sub
        return sub

    def script(self, sub: TestSubscription, *replies: int | tuple[int, dict]) -> None:
        """The next replies for ``sub`` (a status, or ``(status, headers)``); then 201 again."""
        with self._lock:
            for reply in replies:
                self._state.scripts[sub.id].append(reply if isinstance(reply, tuple) else (reply, {}))

    def drop(self, sub: TestSubscription) -> None:
        """The browser unsubscribed: the service answers 410 from now on."""
        with self._lock:
            self._state.subscriptions.pop(sub.id, None)
            self._state.dropped.add(sub.id)
            self._state.scripts[sub.id].clear()

    # what arrived
    @property
    def received(self) -> list[Received]:
        """Pushes accepted and decrypted, in arrival order."""
        with self._lock:
            return list(self._state.received)

    @property
    def errors(self) -> list[str]:
        """Why pushes were refused (bad VAPID, undecryptable body ...)."""
        with self._lock:
            return list(self._state.errors)

    @property
    def count(self) -> int:
        """Pushes accepted (201)."""
        with self._lock:
            return self._state.count

    def attempts(self, sub: TestSubscription) -> int:
        """POSTs for ``sub``, whatever the answer."""
        with self._lock:
            return self._state.attempts[sub.id]

    def wait_for(self, n: int, timeout_s: float = 10.0) -> bool:
        """Wait until at least ``n`` pushes were accepted."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._state.count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # service side
    def handle(self, sid: str, headers: dict, body: bytes, answer) -> None:
        """Serve one POST /push/<sid>."""
        if self.delay_s:
            time.sleep(self.delay_s)
        if not self.verify:
            with self._cond:
                self._state.count += 1
                self._cond.notify_all()
            answer(201)
            return
        lower = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self._state.attempts[sid] += 1
            sub = self._state.subscriptions.get(sid)
            dropped = sid in self._state.dropped
            scripted = self._state.scripts[sid].popleft() if self._state.scripts.get(sid) else None
        if sub is None:
            answer(410 if dropped else 404)
            return
        if scripted is not None and scripted[0] != 201:
            answer(scripted[0], headers=scripted[1])
            return
        try:
            claims = verify_vapid(lower.get("authorization", ""), self.origin, time.time(), self.expected_key)
            if lower.get("content-encoding") != "aes128gcm":
                raise ValueError(f"content-encoding {lower.get('content-encoding')!r}")
            if "ttl" not in lower:
                raise ValueError("no TTL header")
            plaintext = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth_secret,
                                         version="aes128gcm")
        except Exception as exc:  # any failure is the sender's bug: record it and refuse
            with self._lock:
                self._state.errors.append(f"{type(exc).__name__}: {exc}")
            answer(403 if isinstance(exc, VapidError) else 400)
            return
        with self._cond:
            self._state.received.append(Received(sid, plaintext, headers, claims))
            self._state.count += 1
            self._cond.notify_all()
        answer(201)


def main(argv: list[str] | None = None) -> int:
    """Serve until killed (for the benchmark): prints ``PORT <n>``."""
    parser = argparse.ArgumentParser(description="A local Web Push service.")
    parser.add_argument("--no-verify", action="store_true", help="accept any /push/<id> without decrypting")
    args = parser.parse_args(argv)
    endpoint = PushEndpoint(verify=not args.no_verify).start()
    print(f"PORT {endpoint.origin.rsplit(':', 1)[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
