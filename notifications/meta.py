"""Meta's Send API for Messenger (Facebook pages) and Instagram, and Graph API answers in general.

:class:`MetaSend` posts to ``{graph}/me/messages`` with the page access token (sent as a bearer
header, never in the URL) to the page-scoped id ``recipient['address']`` (a PSID on Messenger, an
IGSID on Instagram). Payload:

* ``{"text", "buttons": [{"id", "title"}]}`` - text with quick replies (at most 13, titles cut
  to 20 characters; more options become a numbered list in the text);
* ``{"photo_url" | "photo_file"}`` - an image attachment: by https URL, or uploaded (``filedata``,
  Messenger only; Instagram gets nothing sent without a URL - the text already carries the link);
* ``"platform"``: ``facebook`` or ``instagram`` (text limits differ: 2000 and 1000 characters);
* ``"notification": true`` - a status update outside the conversation: on Messenger it is sent
  with ``messaging_type=MESSAGE_TAG`` and ``tag=ACCOUNT_UPDATE`` (an update on the person's
  application), since it may come after the 24-hour window; Instagram has no such tag.

:func:`classify` maps Graph API answers (shared with WhatsApp): 2xx ok; throttling codes (4, 17,
32, 613, 80007, 130429, 131048, 131056) and 5xx retry; an expired or wrong token (190, HTTP 401)
retry, so fixing the setting lets the queue drain; anything else permanent.

:meth:`MetaSend.download` fetches an attachment URL from a webhook payload, if the media policy
(the providers' CDN hosts) allows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import requests

from notifications.base import DeliveryResult
from notifications.provider import (
    DEFAULT_TIMEOUT_S,
    FetchError,
    clip,
    download,
    make_session,
    network_failure,
    numbered,
    retry_after_of,
)
from notifications.webpush import EndpointPolicy

THROTTLED = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
TOKEN_PROBLEMS = frozenset({190})
QUICK_REPLY_LIMIT = 13
QUICK_REPLY_TITLE = 20
TEXT_LIMITS = {"facebook": 2000, "instagram": 1000}


def graph_error(body: Mapping) -> tuple[int | None, str]:
    """The Graph API error code and message of an answer body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, ""
    code = error.get("code")
    return (code if isinstance(code, int) else None), str(error.get("message") or "")[:200]


def classify(response: requests.Response) -> DeliveryResult:
    """Map a Graph API answer to a delivery outcome (see the module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult.delivered(status)
    code, text = graph_error(json_of(response))
    reason = f"HTTP {status}" + (f" code {code}" if code is not None else "") + (f": {text}" if text else "")
    if status == 429 or status >= 500 or code in THROTTLED:
        return DeliveryResult.retry(status, retry_after_of(response), reason)
    if status == 401 or code in TOKEN_PROBLEMS:
        return DeliveryResult.retry(status, None, reason)
    return DeliveryResult.permanent(status, reason)


def json_of(response: requests.Response) -> dict:
    """The answer's JSON object, or {}."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


class MetaSend:
    """The Send API of one Facebook page (and the Instagram account linked to it)."""

    name = "meta"

    def __init__(self, page_token: str, api_base: str = "https://graph.facebook.com/v21.0", *,
                 media_policy: EndpointPolicy | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 session: requests.Session | None = None):
        self._token = page_token
        self._base = api_base.rstrip("/")
        self._policy = media_policy or EndpointPolicy()
        self.timeout_s = timeout_s
        self._session = session or make_session()

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Deliver one payload (see the module docstring) to ``recipient['address']``."""
        psid = recipient.get("address")
        if not psid:
            return DeliveryResult.permanent(None, "no recipient id")
        platform = payload.get("platform") or "facebook"
        envelope: dict = {"recipient": {"id": psid}, "messaging_type": "RESPONSE"}
        if payload.get("notification") and platform == "facebook":
            envelope.update(messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE")
        photo_url, photo_file = payload.get("photo_url"), payload.get("photo_file")
        if photo_url or photo_file:
            return self._send_image(envelope, platform, photo_url, photo_file)
        text = payload.get("text") or ""
        limit = TEXT_LIMITS.get(platform, 1000)
        buttons = list(payload.get("buttons") or [])
        message: dict = {}
        if buttons and len(buttons) <= QUICK_REPLY_LIMIT:
            message["quick_replies"] = [{"content_type": "text", "title": clip(b["title"], QUICK_REPLY_TITLE),
                                         "payload": str(b["id"])} for b in buttons]
        elif buttons:
            text = numbered(text, buttons)
        message["text"] = clip(text, limit)
        return self._post({**envelope, "message": message})

    def _send_image(self, envelope: dict, platform: str, photo_url, photo_file) -> DeliveryResult:
        if photo_url:
            attachment = {"type": "image", "payload": {"url": photo_url, "is_reusable": False}}
            return self._post({**envelope, "message": {"attachment": attachment}})
        path = Path(photo_file)
        if platform != "facebook" or not path.is_file():
            return DeliveryResult.permanent(None, "no image URL for this platform")
        form = {"recipient": json.dumps(envelope["recipient"]), "messaging_type": envelope["messaging_type"],
                "message": json.dumps({"attachment": {"type": "image", "payload": {"is_reusable": False}}})}
        if "tag" in envelope:
            form["tag"] = envelope["tag"]
        try:
            with path.open("rb") as fh:
                return self._post(None, data=form, files={"filedata": ("photo.jpg", fh, "image/jpeg")})
        except OSError as exc:
            return DeliveryResult.retry(None, None, f"photo unreadable: {exc}")

    def _post(self, body: Mapping | None, *, data=None, files=None) -> DeliveryResult:
        try:
            response = self._session.post(f"{self._base}/me/messages", json=body, data=data, files=files,
                                          headers={"Authorization": f"Bearer {self._token}"},
                                          timeout=self.timeout_s)
        except requests.RequestException as exc:
            return network_failure(exc, [self._token])
        return classify(response)

    def download(self, url: str, *, limit: int) -> bytes:
        """The bytes of an attachment URL from a webhook payload (CDN URLs are signed: no token sent)."""
        problem = self._policy.problem(url)
        if problem:
            raise FetchError(f"attachment URL refused: {problem}", retry=False)
        return download(self._session, url, limit=limit, timeout_s=self.timeout_s)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
