"""Telegram Bot API: ``sendMessage``, ``sendPhoto``, ``answerCallbackQuery``, and photo downloads.

The outbox hands :meth:`TelegramBot.send` a recipient ``{"address": <chat id>}`` and a payload:

* ``{"text", "buttons": [{"id", "title"}], "columns": n}`` - a message with an inline keyboard
  (``callback_data`` = the button id, at most 64 bytes);
* ``{"text", "request_location": true, "location_label"}`` - a one-time reply keyboard with a
  "share my location" button;
* ``{"text", "remove_keyboard": true}`` - the reply keyboard goes away;
* ``{"text", "photo_file" | "photo_url"}`` - ``sendPhoto`` with the text as caption: the file is
  uploaded (multipart) when this host can read it, else Telegram fetches the https URL;
* ``{"method": "answerCallbackQuery", "callback_query_id"}`` - stops the button's spinner.

Answers map to outcomes: ``ok: true`` delivered; 429 retry after ``parameters.retry_after``;
5xx and network failures retry; 403 (the citizen blocked the bot) gone; 401/404 (a wrong bot
token: the deployment's fault, fixable) retry; other 4xx permanent.
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
    describe,
    download,
    make_session,
    network_failure,
    numbered,
)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_LIMIT = 64  # bytes of callback_data
INLINE_LIMIT = 30  # more buttons than this: a numbered list in the text instead


class TelegramBot:
    """One bot (its token), reused for every send and download."""

    name = "telegram"

    def __init__(self, token: str, api_base: str = "https://api.telegram.org", *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, session: requests.Session | None = None):
        self._token = token
        self._base = api_base.rstrip("/")
        self.timeout_s = timeout_s
        self._session = session or make_session()

    def _url(self, method: str) -> str:
        return f"{self._base}/bot{self._token}/{method}"

    # --- sending ---------------------------------------------------------------------

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Deliver one payload (see the module docstring) to the chat ``recipient['address']``."""
        if payload.get("method") == "answerCallbackQuery":
            return self._call("answerCallbackQuery", {"callback_query_id": payload["callback_query_id"]})
        chat_id = recipient.get("address")
        if not chat_id:
            return DeliveryResult.permanent(None, "no chat id")
        text = payload.get("text") or ""
        photo_file, photo_url = payload.get("photo_file"), payload.get("photo_url")
        if photo_file or photo_url:
            return self._send_photo(chat_id, text, photo_file, photo_url)
        body: dict = {"chat_id": chat_id, "text": clip(text, TEXT_LIMIT)}
        buttons = list(payload.get("buttons") or [])
        markup = None
        if buttons and self._fits(buttons):
            markup = {"inline_keyboard": self._rows(buttons, int(payload.get("columns") or 1))}
        elif buttons:
            body["text"] = clip(numbered(text, buttons), TEXT_LIMIT)
        elif payload.get("request_location"):
            markup = {"keyboard": [[{"text": payload.get("location_label") or "📍", "request_location": True}]],
                      "resize_keyboard": True, "one_time_keyboard": True}
        elif payload.get("remove_keyboard"):
            markup = {"remove_keyboard": True}
        if markup is not None:
            body["reply_markup"] = markup
        return self._call("sendMessage", body)

    @staticmethod
    def _fits(buttons: list[Mapping]) -> bool:
        return len(buttons) <= INLINE_LIMIT and all(len(str(b["id"]).encode()) <= CALLBACK_LIMIT for b in buttons)

    @staticmethod
    def _rows(buttons: list[Mapping], columns: int) -> list[list[dict]]:
        cells = [{"text": b["title"], "callback_data": str(b["id"])} for b in buttons]
        columns = max(1, columns)
        return [cells[i : i + columns] for i in range(0, len(cells), columns)]

    def _send_photo(self, chat_id, text: str, photo_file: str | None, photo_url: str | None) -> DeliveryResult:
        caption = clip(text, CAPTION_LIMIT)
        path = Path(photo_file) if photo_file else None
        if path is not None and path.is_file():
            data = {"chat_id": str(chat_id), "caption": caption}
            try:
                with path.open("rb") as fh:
                    return self._post("sendPhoto", data=data, files={"photo": ("photo.jpg", fh, "image/jpeg")})
            except OSError as exc:
                return DeliveryResult.retry(None, None, f"photo unreadable: {exc}")
        if photo_url:
            return self._call("sendPhoto", {"chat_id": chat_id, "photo": photo_url, "caption": caption})
        return DeliveryResult.permanent(None, "photo missing")

    def _call(self, method: str, body: Mapping) -> DeliveryResult:
        return self._post(method, json_body=body)

    def _post(self, method: str, *, json_body: Mapping | None = None, data=None, files=None) -> DeliveryResult:
        try:
            response = self._session.post(self._url(method), json=json_body, data=data, files=files,
                                          timeout=self.timeout_s)
        except requests.RequestException as exc:
            return network_failure(exc, [self._token])
        return classify(response.status_code, _json(response))

    # --- downloading ---------------------------------------------------------------

    def download(self, file_id: str, *, limit: int) -> bytes:
        """The bytes of a file a user sent (``getFile``, then the file URL); FetchError on failure."""
        try:
            response = self._session.get(self._url("getFile"), params={"file_id": file_id}, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise FetchError(describe(exc, [self._token]), retry=True) from None
        body = _json(response)
        result = classify(response.status_code, body)
        if not result.ok:
            raise FetchError(result.error or "getFile failed", retry=result.outcome == "retry",
                             status=response.status_code)
        info = body.get("result") or {}
        size = info.get("file_size")
        if isinstance(size, int) and size > limit:
            raise FetchError("too_large", retry=False)
        path = info.get("file_path")
        if not isinstance(path, str) or not path or ".." in path or path.startswith("/"):
            raise FetchError("no file_path", retry=False)
        return download(self._session, f"{self._base}/file/bot{self._token}/{path}", limit=limit,
                        timeout_s=self.timeout_s, secrets=[self._token])

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def classify(status: int, body: Mapping) -> DeliveryResult:
    """Map a Bot API answer to a delivery outcome (see the module docstring)."""
    if 200 <= status < 300 and body.get("ok") is True:
        return DeliveryResult.delivered(status)
    reason = f"HTTP {status}: {str(body.get('description') or '')[:200]}"
    if status == 429:
        wait = (body.get("parameters") or {}).get("retry_after")
        return DeliveryResult.retry(status, float(wait) if isinstance(wait, int | float) else None, reason)
    if status >= 500 or status in (401, 404) or 200 <= status < 300:
        return DeliveryResult.retry(status, None, reason)
    if status == 403:
        return DeliveryResult.gone(status, reason)
    return DeliveryResult.permanent(status, reason)
