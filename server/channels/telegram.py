"""The Telegram bot's webhook: ``POST /api/v1/channels/telegram/webhook``.

Telegram sends one Update per call with the header ``X-Telegram-Bot-Api-Secret-Token`` set to the
``secret_token`` given to ``setWebhook`` (JAUAP_TELEGRAM_SECRET); it is compared in constant time,
and without it (or without the setting) the answer is 403 and nothing is written. Updates are
deduplicated by ``update_id``. Private chats only: the handle is the chat id.

Understood: text (commands included), location and venue messages, photos (the largest size under
the photo pipeline's limit) and images sent as files, and inline-keyboard presses (callback
queries, whose spinner is stopped by an ``answerCallbackQuery`` queued in the outbox).
"""

from __future__ import annotations

import hmac
from datetime import datetime

from flask import current_app, request

from server import media
from server.api.common import commit
from server.api.errors import error_response
from server.api.spec import endpoint
from server.channels import bp
from server.channels.conversation import Inbound, receive
from server.models import AppealEvent
from server.models.types import utcnow
from server.services import replies

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def authentic(header: str | None, secret: str | None) -> bool:
    """True when the secret-token header equals the configured secret (constant time; no secret: never)."""
    if not secret or not header:
        return False
    return hmac.compare_digest(header.encode(), secret.encode())


def _name(user: dict) -> str | None:
    name = " ".join(str(user.get(k) or "") for k in ("first_name", "last_name")).strip()
    return name or None


def _largest_photo(sizes: list) -> str | None:
    fitting = [s for s in sizes if isinstance(s, dict) and s.get("file_id")
               and (s.get("file_size") or 0) <= media.MAX_BYTES]
    if not fitting:
        return None
    return max(fitting, key=lambda s: (s.get("width") or 0) * (s.get("height") or 0))["file_id"]


def parse_message(message: dict) -> Inbound:
    """A Telegram Message as a channel-neutral inbound message."""
    name = _name(message.get("from") or {})
    location = message.get("location")
    if isinstance(location, dict) and isinstance(location.get("latitude"), int | float) \
            and isinstance(location.get("longitude"), int | float):
        accuracy = location.get("horizontal_accuracy")
        return Inbound("location", lat=float(location["latitude"]), lon=float(location["longitude"]),
                       accuracy_m=float(accuracy) if isinstance(accuracy, int | float) else None, name=name)
    photo = message.get("photo")
    document = message.get("document") or {}
    if isinstance(photo, list) and photo:
        return Inbound("photo", media_ref=_largest_photo(photo), caption=message.get("caption"), name=name)
    if isinstance(document, dict) and str(document.get("mime_type", "")).startswith("image/"):
        return Inbound("photo", media_ref=document.get("file_id"), caption=message.get("caption"), name=name)
    if isinstance(message.get("text"), str):
        return Inbound("text", text=message["text"], name=name)
    return Inbound("other", name=name)


def handle_update(update: dict, now: datetime) -> list[AppealEvent]:
    """Feed one Update to the dialogue (once per ``update_id``); returns the appeal events to commit."""
    update_id = update.get("update_id")
    if not isinstance(update_id, int):
        return []
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        chat = ((callback.get("message") or {}).get("chat")) or {}
        if chat.get("type", "private") != "private" or chat.get("id") is None:
            return []
        inbound = Inbound("choice", choice=str(callback.get("data") or ""), name=_name(callback.get("from") or {}))
        outcome = receive("telegram", str(chat["id"]), str(update_id), inbound, now)
        if outcome is not None and callback.get("id"):
            replies.queue_message("telegram", str(chat["id"]), {"method": "answerCallbackQuery",
                                                                "callback_query_id": str(callback["id"])},
                                  now, dedupe_key=f"chat:telegram:{update_id}:cb")
        return outcome.events if outcome else []
    message = update.get("message")
    if not isinstance(message, dict):
        return []  # edits, channel posts, member updates: nothing to do
    chat = message.get("chat") or {}
    if chat.get("type") != "private" or chat.get("id") is None:
        return []
    outcome = receive("telegram", str(chat["id"]), str(update_id), parse_message(message), now)
    return outcome.events if outcome else []


@bp.post("/telegram/webhook")
@endpoint(tags=["channels"], responses={200: None, 403: None})
def telegram_webhook():
    """Telegram Bot API webhook (authenticated by the X-Telegram-Bot-Api-Secret-Token header)."""
    if not authentic(request.headers.get(SECRET_HEADER), current_app.config.get("JAUAP_TELEGRAM_SECRET")):
        return error_response(403, "webhook_forbidden")
    update = request.get_json(silent=True)
    events = handle_update(update, utcnow()) if isinstance(update, dict) else []
    commit(events)
    return {"ok": True}
