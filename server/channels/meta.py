"""The Meta webhook shared by WhatsApp Cloud API, Instagram and Messenger: ``/api/v1/channels/meta/webhook``.

* ``GET`` is Meta's verification handshake: ``hub.mode=subscribe`` and ``hub.verify_token`` equal
  to JAUAP_META_VERIFY_TOKEN -> the ``hub.challenge`` echoed as plain text; anything else 403.
* ``POST`` must carry ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the **raw** body
  with the app secret (JAUAP_META_APP_SECRET), compared in constant time before the body is parsed;
  a missing or wrong signature gets 403 and nothing is written.
* The body is dispatched by ``object``: ``whatsapp_business_account`` (``entry[].changes[].value
  .messages[]``: text, location, image, interactive replies; delivery statuses are ignored),
  ``instagram`` and ``page`` (``entry[].messaging[]``: text, quick replies, postbacks, image
  attachments; echoes of our own messages, reads and deliveries are ignored).
* Deduplicated by the message id (``wamid...``, ``mid``); one POST may batch many messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from flask import current_app, request

from server.api.common import commit
from server.api.errors import error_response
from server.api.spec import endpoint
from server.channels import bp
from server.channels.conversation import Inbound, receive
from server.models import AppealEvent
from server.models.types import utcnow

SIGNATURE_HEADER = "X-Hub-Signature-256"
PLATFORMS = {"instagram": "instagram", "page": "facebook"}


def signature_valid(raw: bytes, header: str | None, secret: str | None) -> bool:
    """True when ``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``raw`` under ``secret`` (constant time)."""
    if not secret or not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("ascii", "replace"))


def verify_challenge(mode: str | None, token: str | None, challenge: str | None, expected: str | None) -> str | None:
    """The challenge to echo when the subscription request is ours, else None."""
    if mode != "subscribe" or not expected or not token or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return challenge


# --- WhatsApp -----------------------------------------------------------------------------------


def parse_whatsapp(message: dict, profile_name: str | None) -> Inbound:
    """A WhatsApp Cloud API message as a channel-neutral inbound message."""
    sender = str(message.get("from") or "")
    common = {"name": profile_name, "phone": f"+{sender}" if sender.isdigit() else None}
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        return Inbound("text", text=str(body.get("body") or ""), **common)
    if kind == "location" and isinstance(body.get("latitude"), int | float) \
            and isinstance(body.get("longitude"), int | float):
        return Inbound("location", lat=float(body["latitude"]), lon=float(body["longitude"]), **common)
    if kind == "image" or (kind == "document" and str(body.get("mime_type", "")).startswith("image/")):
        return Inbound("photo", media_ref=str(body.get("id") or ""), caption=body.get("caption"), **common)
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        return Inbound("choice", choice=str(reply.get("id") or ""), **common)
    if kind == "button":  # a quick-reply button of a template message
        return Inbound("text", text=str(body.get("text") or ""), **common)
    return Inbound("other", **common)


def handle_whatsapp(payload: dict, now: datetime) -> list[AppealEvent]:
    """Feed every message of a WhatsApp notification to the dialogue; returns the appeal events."""
    events: list[AppealEvent] = []
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes")):
            value = change.get("value") if change.get("field") == "messages" else None
            if not isinstance(value, dict):
                continue
            names = {str(c.get("wa_id")): (c.get("profile") or {}).get("name")
                     for c in _list(value.get("contacts"))}
            for message in _list(value.get("messages")):
                sender, mid = message.get("from"), message.get("id")
                if not sender or not mid:
                    continue
                outcome = receive("whatsapp", str(sender), str(mid),
                                  parse_whatsapp(message, names.get(str(sender))), now)
                if outcome is not None:
                    events.extend(outcome.events)
    return events


# --- Instagram and Messenger --------------------------------------------------------------------


def parse_messaging(event: dict) -> list[tuple[str, Inbound]]:
    """A Messenger/Instagram ``messaging`` event as (provider id, inbound message) pairs; [] to ignore."""
    postback = event.get("postback")
    if isinstance(postback, dict):
        mid = postback.get("mid") or f"postback:{event.get('timestamp')}:{postback.get('payload')}"
        return [(str(mid), Inbound("choice", choice=str(postback.get("payload") or "")))]
    message = event.get("message")
    if not isinstance(message, dict) or message.get("is_echo") or message.get("is_deleted") or not message.get("mid"):
        return []
    mid = str(message["mid"])
    quick = message.get("quick_reply")
    if isinstance(quick, dict) and quick.get("payload"):
        return [(mid, Inbound("choice", choice=str(quick["payload"])))]
    out = []
    for i, attachment in enumerate(_list(message.get("attachments"))):
        kind, body = attachment.get("type"), attachment.get("payload") or {}
        key = mid if i == 0 else f"{mid}:{i}"
        coords = body.get("coordinates") if isinstance(body, dict) else None
        if kind == "image" and isinstance(body, dict) and body.get("url"):
            out.append((key, Inbound("photo", media_ref=str(body["url"]), caption=message.get("text"))))
        elif kind == "location" and isinstance(coords, dict) and isinstance(coords.get("lat"), int | float) \
                and isinstance(coords.get("long"), int | float):
            out.append((key, Inbound("location", lat=float(coords["lat"]), lon=float(coords["long"]))))
        else:
            out.append((key, Inbound("other")))
    if out:
        return out
    if isinstance(message.get("text"), str):
        return [(mid, Inbound("text", text=message["text"]))]
    return [(mid, Inbound("other"))]


def handle_messaging(channel: str, payload: dict, now: datetime) -> list[AppealEvent]:
    """Feed every message of an Instagram or Messenger notification to the dialogue; returns the appeal events."""
    events: list[AppealEvent] = []
    for entry in _list(payload.get("entry")):
        for event in _list(entry.get("messaging")):
            sender = (event.get("sender") or {}).get("id")
            if not sender or str(sender) == str(entry.get("id")):
                continue  # our own page/account speaking
            for provider_id, inbound in parse_messaging(event):
                outcome = receive(channel, str(sender), provider_id, inbound, now)
                if outcome is not None:
                    events.extend(outcome.events)
    return events


def handle_notification(payload: dict, now: datetime) -> list[AppealEvent]:
    """Dispatch one signed Meta notification by its ``object``; returns the appeal events to commit."""
    kind = payload.get("object")
    if kind == "whatsapp_business_account":
        return handle_whatsapp(payload, now)
    if kind in PLATFORMS:
        return handle_messaging(PLATFORMS[kind], payload, now)
    return []


def _list(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- views --------------------------------------------------------------------------------------


@bp.get("/meta/webhook")
@endpoint(tags=["channels"], responses={200: None, 403: None})
def meta_verify():
    """Meta's webhook verification handshake (hub.mode, hub.verify_token, hub.challenge)."""
    challenge = verify_challenge(request.args.get("hub.mode"), request.args.get("hub.verify_token"),
                                 request.args.get("hub.challenge"), current_app.config.get("JAUAP_META_VERIFY_TOKEN"))
    if challenge is None:
        return error_response(403, "webhook_forbidden")
    return current_app.response_class(challenge, mimetype="text/plain")


@bp.post("/meta/webhook")
@endpoint(tags=["channels"], responses={200: None, 403: None})
def meta_webhook():
    """WhatsApp, Instagram and Messenger notifications (authenticated by X-Hub-Signature-256 over the raw body)."""
    raw = request.get_data(cache=True)
    if not signature_valid(raw, request.headers.get(SIGNATURE_HEADER), current_app.config.get("JAUAP_META_APP_SECRET")):
        return error_response(403, "webhook_forbidden")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "malformed_json")
    events = handle_notification(payload, utcnow()) if isinstance(payload, dict) else []
    commit(events)
    return {"ok": True}
