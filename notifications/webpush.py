"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm encryption (RFC 8291).

Three pieces, all plain Python:

* :func:`load_or_create_key` - the server's VAPID key pair. Generated on first use
  into ``<folder>/vapid_private.pem`` with mode 0600 (written to a private temporary
  file, then hard-linked into place, so two processes starting at once agree on one
  key). Loading **refuses** a key file that group or others may read: a leaked key
  lets anyone push to every subscribed device. Every process that sends or serves
  the public key must see the same file (subscriptions are bound to it).
* :class:`EndpointPolicy` - which push endpoints the server may POST to. The
  worker sends to URLs that browsers hand us, so an unchecked endpoint is a
  server-side request forgery: only ``https`` to the known push services
  (configurable host names; no IP literals) and, for tests and development only,
  ``http://127.0.0.1:<port>``.
* :class:`WebPushSender` - the fast sender: one ``requests.Session`` (keep-alive,
  connection pool), the key parsed once, the signed VAPID JWT cached per push-service
  origin until 10 minutes before it expires (12 h lifetime), payload encrypted with
  pywebpush's ``WebPusher.encode`` (aes128gcm). Replies map to outcomes: 2xx ok;
  404/410 gone; 429 and 5xx retry (honouring Retry-After); other 4xx permanent.

Payloads are at most 512 bytes of JSON with only whitelisted keys, so no personal
data can ride along by accident (push services see metadata; devices show it on
lock screens).
"""

from __future__ import annotations

import binascii
import email.utils
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher, WebPushException

from notifications.base import DeliveryResult

log = logging.getLogger(__name__)

KEY_FILE = "vapid_private.pem"
PAYLOAD_LIMIT = 512  # bytes of plaintext JSON; well under every push service's 4 KB
# The only keys a push may carry (the contract with the field app's service worker).
PAYLOAD_KEYS = frozenset({"kind", "appeal_id", "reg_no", "url"})
JWT_LIFETIME_S = 12 * 3600  # push services refuse tokens valid for more than 24 h
JWT_RENEW_BEFORE_S = 600  # re-sign this long before expiry, so clock skew never makes one stale
MAX_RETRY_AFTER_S = 24 * 3600
# Known browser push services (Chrome/FCM, Firefox, Safari, Edge/WNS). ".x" matches any subdomain of x.
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "android.googleapis.com",
    "updates.push.services.mozilla.com",
    "web.push.apple.com",
    ".push.apple.com",
    ".notify.windows.com",
)


class InsecureKeyFile(RuntimeError):
    """The VAPID key file may be read by group or others."""


class PayloadError(ValueError):
    """The payload is too large or not JSON-serialisable."""


# --- the VAPID key ----------------------------------------------------------


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise InsecureKeyFile(
            f"{path} has mode {mode:04o}; the VAPID private key must be readable by its owner only "
            f"(run: chmod 600 {path})")


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    _check_mode(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 private key")
    return key


def load_or_create_key(folder: str | os.PathLike) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key in ``folder`` (created, mode 0600, on first use)."""
    path = Path(folder) / KEY_FILE
    try:
        return _load_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    # Created 0600 from the start (never briefly world-readable, whatever the umask).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and never replaces a key another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _load_key(path)


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as browsers want it: base64url (no padding) of the uncompressed P-256 point."""
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(raw)


# --- which endpoints we may call ------------------------------------------


def origin_of(endpoint: str) -> str:
    """``scheme://host[:port]`` of a URL: the VAPID audience."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class EndpointPolicy:
    """Which push endpoints the server may POST to (the SSRF guard)."""

    hosts: tuple[str, ...] = DEFAULT_PUSH_HOSTS
    allow_loopback_http: bool = False  # tests and development only; production refuses it

    @classmethod
    def of(cls, hosts: Iterable[str], allow_loopback_http: bool = False) -> EndpointPolicy:
        """A policy from configuration values (host names lower-cased, blanks dropped)."""
        return cls(tuple(h.strip().lower() for h in hosts if h.strip()), allow_loopback_http)

    def _host_listed(self, host: str) -> bool:
        return any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.hosts)

    def problem(self, endpoint: str) -> str | None:
        """None when ``endpoint`` may be called, else a short reason."""
        if not isinstance(endpoint, str) or len(endpoint) > 1024:
            return "too long"
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in endpoint):
            return "contains spaces or control characters"
        try:
            parts = urlsplit(endpoint)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            return "not a URL"
        if parts.username is not None or parts.password is not None:
            return "credentials in the URL"
        if not host:
            return "no host"
        if parts.scheme == "http":
            if self.allow_loopback_http and host == "127.0.0.1":
                return None
            return "not https"
        if parts.scheme != "https":
            return "not https"
        if port not in (None, 443):
            return "non-standard port"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return "an IP address, not a push service"
        if not self._host_listed(host):
            return "not a known push service"
        return None

    def allows(self, endpoint: str) -> bool:
        """True when ``endpoint`` may be called."""
        return self.problem(endpoint) is None


# --- payloads and replies ---------------------------------------------------


def encode_payload(payload: Mapping, keys: frozenset[str] = PAYLOAD_KEYS) -> bytes:
    """Compact JSON of the whitelisted keys of ``payload``; PayloadError beyond 512 bytes."""
    dropped = sorted(set(payload) - keys)
    if dropped:
        # Trim, loudly: a key outside the contract could carry personal data to a lock screen.
        log.warning("push payload keys dropped: %s", ", ".join(dropped))
    kept = {k: payload[k] for k in sorted(payload) if k in keys}
    try:
        data = json.dumps(kept, separators=(",", ":"), ensure_ascii=True).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from None
    if len(data) > PAYLOAD_LIMIT:
        raise PayloadError(f"payload is {len(data)} bytes; at most {PAYLOAD_LIMIT}")
    return data


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), clamped to a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, min(seconds, MAX_RETRY_AFTER_S))


def classify(status: int, retry_after: str | None = None, body: str = "", now: float | None = None) -> DeliveryResult:
    """Map a push service's HTTP reply to a delivery outcome."""
    if 200 <= status < 300:
        return DeliveryResult.delivered(status)
    reason = f"HTTP {status}" + (f": {body[:200]}" if body else "")
    if status in (404, 410):
        return DeliveryResult.gone(status, reason)
    if status == 429 or status >= 500:
        return DeliveryResult.retry(status, parse_retry_after(retry_after, time.time() if now is None else now),
                                    reason)
    return DeliveryResult.permanent(status, reason)


# --- the sender -------------------------------------------------------------


def _session() -> requests.Session:
    """A pooled session that reads the proxy and CA settings of the environment once, not per request."""
    session = requests.Session()
    # requests re-reads every environment variable on each request when trust_env is on (a third of
    # the client's CPU per push); take the proxy and CA-bundle settings now and turn that off.
    proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
    session.trust_env = False
    session.proxies.update(proxies)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    # No automatic retries: the outbox decides when to try again.
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class WebPushSender:
    """Sends encrypted pushes; reuse one instance for many messages (it keeps connections and tokens)."""

    name = "webpush"

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str, *,
                 policy: EndpointPolicy | None = None, session: requests.Session | None = None,
                 timeout_s: float = 10.0, ttl_s: int = 12 * 3600, urgency: str = "high",
                 clock: Callable[[], float] = time.time):
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError("the VAPID subject must be a mailto: or https: contact")
        self._key = private_key
        self._public = public_key_b64(private_key)
        self.subject = subject
        self.policy = policy or EndpointPolicy()
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.urgency = urgency
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}  # origin -> (Authorization value, exp)
        self._lock = threading.Lock()
        if session is None:
            session = _session()
        self.session = session

    @property
    def public_key(self) -> str:
        """The VAPID public key (base64url), the browser's ``applicationServerKey``."""
        return self._public

    def authorization(self, endpoint: str) -> str:
        """The ``Authorization: vapid t=…, k=…`` value for ``endpoint``'s origin (cached until near expiry)."""
        origin = origin_of(endpoint)
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(origin)
        if cached is not None and cached[1] - now > JWT_RENEW_BEFORE_S:
            return cached[0]
        exp = int(now) + JWT_LIFETIME_S
        token = vapid_jwt.sign({"aud": origin, "exp": exp, "sub": self.subject}, self._key)
        value = f"vapid t={token}, k={self._public}"
        with self._lock:
            self._tokens[origin] = (value, exp)
        return value

    def _forget_token(self, endpoint: str) -> None:
        with self._lock:
            self._tokens.pop(origin_of(endpoint), None)

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Encrypt and POST ``payload`` to ``recipient`` = ``{"endpoint", "p256dh", "auth"}``."""
        endpoint = recipient.get("endpoint") or ""
        problem = self.policy.problem(endpoint)
        if problem:
            return DeliveryResult.permanent(None, f"endpoint refused: {problem}")
        try:
            data = encode_payload(payload)
        except PayloadError as exc:
            return DeliveryResult.permanent(None, str(exc))
        try:
            pusher = WebPusher({"endpoint": endpoint,
                                "keys": {"p256dh": recipient["p256dh"], "auth": recipient["auth"]}})
            body = pusher.encode(data, "aes128gcm")["body"]
        except (KeyError, ValueError, binascii.Error, WebPushException) as exc:
            return DeliveryResult.permanent(None, f"bad subscription keys: {exc}")
        headers = {
            "Authorization": self.authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.ttl_s),
            "Urgency": self.urgency,
        }
        try:
            resp = self.session.post(endpoint, data=body, headers=headers, timeout=self.timeout_s,
                                     allow_redirects=False)
        except requests.RequestException as exc:
            return DeliveryResult.retry(None, None, f"{type(exc).__name__}: {exc}"[:300])
        text = resp.text  # read the body so the connection goes back to the pool
        if resp.status_code in (401, 403):
            # Perhaps our token is what the service refuses (clock skew, rotated key): sign afresh next time.
            self._forget_token(endpoint)
        return classify(resp.status_code, resp.headers.get("Retry-After"), text, self._clock())

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()
