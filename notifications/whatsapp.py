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
by WhatsApp (code 131047). A payload may carry ``{"template": {"name", "language", "params"}}``:
an approved message template (body parameters in order) sent instead when WhatsApp refuses the
free-form message for that reason - an answer given days after the citizen wrote still reaches
them. Without one, such a message ends ``permanent``.

:meth:`WhatsAppCloud.download` resolves a media id to its short-lived URL (``GET /{media-id}``)
and downloads it with the same bearer token, if the URL's host is allowed by the media policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import requests

from notifications.base import DeliveryResult
from notifications.meta import classify, graph_error, json_of
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
REENGAGEMENT = 131047  # more than 24 hours since the citizen last wrote: only a template may go now
PARAM_LIMIT = 300  # a template body parameter (the body as a whole is limited to 1024)


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
        message, failure = self._message(str(to), payload)
        if failure is not None:
            return failure
        result, code = self._post(message)
        template = payload.get("template")
        if code == REENGAGEMENT and isinstance(template, Mapping) and template.get("name"):
            result, _code = self._post(template_message(str(to), template))
        return result

    def _message(self, to: str, payload: Mapping) -> tuple[dict, DeliveryResult | None]:
        text = payload.get("text") or ""
        message: dict = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        if payload.get("photo_url") or payload.get("photo_file"):
            image, failure = self._image(payload)
            if failure is not None:
                return {}, failure
            if text:
                image["caption"] = clip(text, BODY_LIMIT)
            message.update(type="image", image=image)
            return message, None
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
        return message, None

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

    def _post(self, message: Mapping) -> tuple[DeliveryResult, int | None]:
        """Post one message: the outcome, and the Graph error code when it was refused."""
        try:
            response = self._session.post(f"{self._base}/{self._phone_id}/messages", json=message,
                                          headers=self._auth, timeout=self.timeout_s)
        except requests.RequestException as exc:
            return network_failure(exc, [self._token]), None
        result = classify(response)
        return result, (None if result.ok else graph_error(json_of(response))[0])

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


def template_param(value) -> str:
    """One body parameter as WhatsApp accepts it: no newlines or tabs, no runs of spaces, not empty."""
    return clip(" ".join(str(value or "").split()) or "-", PARAM_LIMIT)


def template_message(to: str, template: Mapping) -> dict:
    """The Cloud API message for an approved template: its name, language code and body parameters."""
    params = [{"type": "text", "text": template_param(p)} for p in template.get("params") or []]
    body: dict = {"name": str(template["name"]), "language": {"code": str(template.get("language") or "en")}}
    if params:
        body["components"] = [{"type": "body", "parameters": params}]
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template",
            "template": body}
