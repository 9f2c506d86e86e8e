"""WhatsApp Cloud API: messages to a citizen's WhatsApp number, and downloads of the photos they send.

:class:`WhatsAppCloud` posts to ``{graph}/{phone-number-id}/messages`` with the bearer token to
``recipient['address']`` (the citizen's ``wa_id``). Payload:

* ``{"text"}`` - a text message (link previews on: the tracking link shows as a card);
* ``{"text", "buttons": [{"id", "title"}], "menu_label"}`` - up to 3 options as reply buttons
  (titles cut to 20 characters), up to 10 as a list (rows of 24), more as a numbered text;
* ``{"text", "request_location": true}`` - an interactive "send location" request;
* ``{"text", "photo_url" | "photo_file"}`` - an image with the text as caption: by https URL,
  or uploaded first to ``/{phone-number-id}/media`` and sent by media id.

Free-form messages reach a citizen within 24 hours of their last message; later ones are refused
by WhatsApp (code 131047) and end ``permanent`` - approved message templates are the way past that.

:meth:`WhatsAppCloud.download` resolves a media id to its short-lived URL (``GET /{media-id}``)
and downloads it with the same bearer token, if the URL's host is allowed by the media policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import requests

from notifications.base import DeliveryResult
from notifications.meta import classify, json_of
from notifications.provider import (
    DEFAULT_TIMEOUT_S,
    FetchError,
    clip,
    describe,
    download,
    make_session,
    network_failure,
    numbered,
)
from notifications.webpush import EndpointPolicy

TEXT_LIMIT = 4096
BODY_LIMIT = 1024  # interactive body and image caption
BUTTON_TITLE = 20
ROW_TITLE = 24
MAX_BUTTONS = 3
MAX_ROWS = 10


class WhatsAppCloud:
    """One WhatsApp business phone number of the Cloud API."""

    name = "whatsapp"

    def __init__(self, token: str, phone_id: str, api_base: str = "https://graph.facebook.com/v21.0", *,
                 media_policy: EndpointPolicy | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 session: requests.Session | None = None):
        self._token = token
        self._phone_id = phone_id
        self._base = api_base.rstrip("/")
        self._policy = media_policy or EndpointPolicy()
        self.timeout_s = timeout_s
        self._session = session or make_session()

    @property
    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self._token}"}

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Deliver one payload (see the module docstring) to the WhatsApp user ``recipient['address']``."""
        to = recipient.get("address")
        if not to:
            return DeliveryResult.permanent(None, "no wa_id")
        text = payload.get("text") or ""
        message: dict = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": str(to)}
        if payload.get("photo_url") or payload.get("photo_file"):
            image, failure = self._image(payload)
            if failure is not None:
                return failure
            if text:
                image["caption"] = clip(text, BODY_LIMIT)
            message.update(type="image", image=image)
            return self._post(message)
        buttons = list(payload.get("buttons") or [])
        if payload.get("request_location"):
            message.update(type="interactive", interactive={
                "type": "location_request_message", "body": {"text": clip(text, BODY_LIMIT)},
                "action": {"name": "send_location"}})
        elif buttons and len(buttons) <= MAX_BUTTONS:
            message.update(type="interactive", interactive={
                "type": "button", "body": {"text": clip(text, BODY_LIMIT)},
                "action": {"buttons": [{"type": "reply", "reply": {"id": str(b["id"]),
                                                                    "title": clip(b["title"], BUTTON_TITLE)}}
                                       for b in buttons]}})
        elif buttons and len(buttons) <= MAX_ROWS:
            message.update(type="interactive", interactive={
                "type": "list", "body": {"text": clip(text, BODY_LIMIT)},
                "action": {"button": clip(payload.get("menu_label") or "≡", BUTTON_TITLE),
                           "sections": [{"rows": [{"id": str(b["id"]), "title": clip(b["title"], ROW_TITLE)}
                                                  for b in buttons]}]}})
        else:
            message.update(type="text", text={"body": clip(numbered(text, buttons), TEXT_LIMIT),
                                              "preview_url": True})
        return self._post(message)

    def _image(self, payload: Mapping) -> tuple[dict, DeliveryResult | None]:
        if payload.get("photo_url"):
            return {"link": payload["photo_url"]}, None
        path = Path(payload["photo_file"])
        if not path.is_file():
            return {}, DeliveryResult.permanent(None, "photo missing")
        try:
            with path.open("rb") as fh:
                response = self._session.post(
                    f"{self._base}/{self._phone_id}/media", headers=self._auth, timeout=self.timeout_s,
                    data={"messaging_product": "whatsapp", "type": "image/jpeg"},
                    files={"file": ("photo.jpg", fh, "image/jpeg")})
        except requests.RequestException as exc:
            return {}, network_failure(exc, [self._token])
        except OSError as exc:
            return {}, DeliveryResult.retry(None, None, f"photo unreadable: {exc}")
        result = classify(response)
        media_id = json_of(response).get("id")
        if not result.ok:
            return {}, result
        if not media_id:
            return {}, DeliveryResult.retry(response.status_code, None, "media upload gave no id")
        return {"id": str(media_id)}, None

    def _post(self, message: Mapping) -> DeliveryResult:
        try:
            response = self._session.post(f"{self._base}/{self._phone_id}/messages", json=message,
                                          headers=self._auth, timeout=self.timeout_s)
        except requests.RequestException as exc:
            return network_failure(exc, [self._token])
        return classify(response)

    def download(self, media_id: str, *, limit: int) -> bytes:
        """The bytes of a media id from a webhook (``GET /{media-id}`` -> URL -> bytes); FetchError on failure."""
        if not media_id or not media_id.isdigit():
            raise FetchError("not a media id", retry=False)
        try:
            response = self._session.get(f"{self._base}/{media_id}", headers=self._auth, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise FetchError(describe(exc, [self._token]), retry=True) from None
        result = classify(response)
        if not result.ok:
            raise FetchError(result.error or "media lookup failed", retry=result.outcome == "retry",
                             status=response.status_code)
        info = json_of(response)
        size = info.get("file_size")
        if isinstance(size, int) and size > limit:
            raise FetchError("too_large", retry=False)
        url = info.get("url")
        problem = self._policy.problem(url) if isinstance(url, str) else "no URL"
        if problem:
            raise FetchError(f"media URL refused: {problem}", retry=False)
        return download(self._session, url, limit=limit, timeout_s=self.timeout_s, headers=self._auth,
                        secrets=[self._token])

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
