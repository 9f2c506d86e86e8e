"""Shared plumbing of the citizen-channel providers (Telegram, WhatsApp, Meta, SMS gateways).

Plain Python, no Flask. Three things every provider module needs:

* :func:`make_session` - one pooled ``requests.Session`` per channel, proxy and CA settings read once;
* :func:`download` - fetch a citizen's photo from a provider with a hard size cap, streamed, so a
  hostile or broken remote can neither exhaust memory nor hang the worker; errors become
  :class:`FetchError` saying whether trying again later could help;
* :func:`numbered` - the text fallback for choice buttons a channel cannot draw (too many, too long),
  so every step of the guided dialogue can also be answered by typing a number.

Attachment URLs that arrive inside webhook payloads are checked against a host allow-list
(:data:`DEFAULT_MEDIA_HOSTS`, the providers' CDNs; the same :class:`EndpointPolicy` as Web Push:
https only, no IP literals) before the worker fetches them: a server must not be made to fetch
arbitrary URLs, even from a signed payload.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Mapping, Sequence

import requests

from notifications.base import DeliveryResult
from notifications.webpush import EndpointPolicy, parse_retry_after

# Where Meta and Telegram serve message attachments (".x" = any subdomain of x).
DEFAULT_MEDIA_HOSTS = (".fbcdn.net", ".fbsbx.com", ".cdninstagram.com", ".whatsapp.net", "api.telegram.org")
DEFAULT_TIMEOUT_S = 10.0
CHUNK = 64 * 1024


class FetchError(Exception):
    """A media download failed; ``retry`` says whether a later attempt could succeed."""

    def __init__(self, reason: str, *, retry: bool, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.status = status


def make_session() -> requests.Session:
    """A pooled session that reads the environment's proxy and CA settings once."""
    session = requests.Session()
    proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
    session.trust_env = False
    session.proxies.update(proxies)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def media_policy(hosts: Sequence[str], allow_loopback_http: bool = False) -> EndpointPolicy:
    """Which attachment URLs the worker may fetch (tests and development may allow http://127.0.0.1)."""
    return EndpointPolicy.of(hosts, allow_loopback_http)


def retry_after_of(response: requests.Response) -> float | None:
    """The remote's Retry-After header in seconds, if any."""
    return parse_retry_after(response.headers.get("Retry-After"), time.time())


def describe(exc: Exception, secrets: Sequence[str | None] = ()) -> str:
    """A short description of ``exc`` with every secret blanked (requests puts the URL, and so a Telegram
    bot token, into its error messages, which end up in logs and outbox rows)."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<secret>")
    return text[:300]


def network_failure(exc: Exception, secrets: Sequence[str | None] = ()) -> DeliveryResult:
    """A send that never got an answer: try again later."""
    return DeliveryResult.retry(None, None, describe(exc, secrets))


def download(session: requests.Session, url: str, *, limit: int, timeout_s: float = DEFAULT_TIMEOUT_S,
             headers: Mapping[str, str] | None = None, secrets: Sequence[str | None] = ()) -> bytes:
    """GET ``url`` and return at most ``limit`` bytes, or raise FetchError.

    Redirects are not followed (a redirect could lead anywhere); a declared or actual size above
    ``limit`` is refused for good; 429, 5xx and network failures may be retried.
    """
    try:
        with session.get(url, headers=dict(headers or {}), timeout=timeout_s, stream=True,
                         allow_redirects=False) as response:
            status = response.status_code
            if status == 429 or status >= 500 or status == 401:
                # 401: a token being rotated; the row dies after its attempts if it stays wrong
                raise FetchError(f"HTTP {status}", retry=True, status=status)
            if status != 200:
                raise FetchError(f"HTTP {status}", retry=False, status=status)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError("too_large", retry=False, status=status)
            body = bytearray()
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > limit:
                    raise FetchError("too_large", retry=False, status=status)
            return bytes(body)
    except requests.RequestException as exc:
        raise FetchError(describe(exc, secrets), retry=True) from None


def numbered(text: str, buttons: Sequence[Mapping]) -> str:
    """``text`` followed by the options as a numbered list (answer by typing the number)."""
    if not buttons:
        return text
    lines = [f"{i}. {b['title']}" for i, b in enumerate(buttons, 1)]
    return f"{text}\n\n" + "\n".join(lines)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
