"""HTTP hardening: security headers on every response, cross-origin writes refused, limits on logins and appeals.

* **Headers** (after every request, never weakening a stricter one a view set, e.g. the photos'
  ``default-src 'none'; sandbox``): a Content-Security-Policy with no inline script and no inline
  style (the pages load every script and style from files), ``nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY``, HSTS over HTTPS (or with secure cookies on) only, and
  ``Cache-Control: no-store`` on everything that carries personal data: staff-only pages, every API
  answer to a logged-in caller, the server-rendered pages (they show who is logged in, or hold the
  session's CSRF token). Static files and the public app shells keep their caching.
* **Cross-origin writes**: a browser sends ``Origin`` (or at least ``Referer``) with every POST/PUT/PATCH/
  DELETE; one naming another site than this one (or ``JAUAP_CORS_ORIGINS``, or ``JAUAP_PUBLIC_URL``) is
  refused with 403 ``cross_origin`` before the CSRF check. Bearer-token clients are exempt (a page on another
  site cannot add that header without a CORS preflight, which this app never grants), and so are the
  webhooks and Open311 writes, which servers send and which authenticate by signature or api_key.
* **Rate limits** (``server.ratelimit``): the login views call ``check_login``; appeal creation is
  counted here, per staff account, before the view runs. Over a limit: 429 with ``Retry-After``.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from flask_login import current_user

from server.api.errors import error_response
from server.ratelimit import TooManyAttempts, check_appeal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Written by other servers, authenticated by a signature, secret header or api_key (never by a cookie).
SIGNED_ENDPOINTS = frozenset({"open311.create_request", "open311.post_update", "open311.unknown",
                              "channels.telegram_webhook", "channels.meta_webhook"})
HSTS = "max-age=31536000"
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_EXT = "jauap_csp"


def _origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-cased; None for anything else ("null", garbage)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def tile_source(tile_url: str | None) -> str | None:
    """The CSP source for the map tiles: ``https://{s}.tile.example.org/{z}/{x}/{y}.png`` -> ``https://*.tile.example.org``."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = re.sub(r"\{[^}]*\}", "*", parts.netloc.lower())
    if "*" in host.lstrip("*"):  # CSP allows a wildcard only as the leftmost label
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str | None, host: str | None = None) -> str:
    """The page policy: everything from this origin's files, map tiles from the tile host, sockets to this host."""
    tiles = tile_source(tile_url)
    img = ["'self'", "data:", "blob:", *([tiles] if tiles else [])]
    connect = ["'self'"]
    if host and _HOST_RE.match(host):
        # CSP3 lets 'self' cover ws(s) to this host, but older browsers want it spelled out for Socket.IO.
        connect += [f"ws://{host}", f"wss://{host}"]
    if tiles:
        connect.append(tiles)  # the field app's service worker keeps tiles for offline use
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": img,
        "font-src": ["'self'", "data:"],
        "connect-src": connect,
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "media-src": ["'self'", "blob:"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def request_is_https() -> bool:
    """Whether the browser talks TLS to us: the socket, or the trusted proxy's ``X-Forwarded-Proto``."""
    if request.is_secure:
        return True
    if current_app.config.get("JAUAP_PROXY_HOPS", 0) > 0:
        # Behind N proxies the nearest one's word is the one to trust (it terminates TLS).
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        return proto == "https"
    return False


def allowed_origins() -> set[str]:
    """The origins whose pages may write with the staff's cookie: this one, the public URL, JAUAP_CORS_ORIGINS."""
    scheme = "https" if request_is_https() else request.scheme
    found = {f"{scheme}://{request.host}".lower(), _origin_of(current_app.config.get("JAUAP_PUBLIC_URL"))}
    found.update(_origin_of(o) for o in current_app.config.get("JAUAP_CORS_ORIGINS") or [])
    found.discard(None)
    return found  # type: ignore[return-value]


def refuse_cross_origin():
    """before_request: 403 for a browser write coming from another site's page."""
    if request.method in SAFE_METHODS or request.endpoint is None or request.endpoint in SIGNED_ENDPOINTS:
        return None
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None
    raw = request.headers.get("Origin")
    if raw is None:
        raw = request.headers.get("Referer")
        if raw is None:
            return None  # not a browser (curl, a server): it cannot be riding a staff member's cookie
    # "Origin: null" (sandboxed frames, some redirects) is another site as far as we can tell.
    if _origin_of(raw) in allowed_origins():
        return None
    return error_response(403, "cross_origin")


def limit_appeal_creation():
    """before_request: count a new appeal against its author's JAUAP_APPEAL_LIMITS (429 past it)."""
    if request.endpoint != "api.create_appeal" or request.method != "POST":
        return None
    if not current_user.is_authenticated:
        return None  # the policy answers 401
    check_appeal(current_user.id, time.time())
    return None


def _personal(response) -> bool:
    """Whether a response may carry personal data (and must not be stored by any cache)."""
    from server.security import PUBLIC, policy_for  # late: server.security imports the API package

    rule = policy_for(request.endpoint)
    if rule is not None and rule != PUBLIC:
        return True  # a staff-only page or API endpoint
    if request.endpoint in ("web.index", "web.login"):
        return True  # rendered per session: the user's name, the session's CSRF token
    if request.path.startswith("/api/"):
        return current_user.is_authenticated
    return False


def add_security_headers(response):
    """after_request: the headers above; a header a view set itself (stricter, as for photos) is kept."""
    headers = response.headers
    csp = content_security_policy(current_app.config.get("JAUAP_TILE_URL"), request.host)
    headers.setdefault("Content-Security-Policy", csp)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    # Secure cookies mean the site is served over TLS (a proxy in front that we were not told about);
    # a browser ignores HSTS received over plain http, so sending it then is harmless.
    if request_is_https() or current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if _personal(response):
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    return response


def _too_many(exc: TooManyAttempts):
    response, status = error_response(429, exc.code, minutes=exc.minutes)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response, status


def init_hardening(app: Flask) -> None:
    """Register the checks and headers on ``app`` (before the security policy, so a cross-site write
    gets 403 ``cross_origin`` rather than a CSRF error)."""
    app.before_request(refuse_cross_origin)
    app.before_request(limit_appeal_creation)
    app.after_request(add_security_headers)
    app.register_error_handler(TooManyAttempts, _too_many)
