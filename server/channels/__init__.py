"""Inbound chat channels: the Telegram and Meta (WhatsApp, Instagram, Messenger) webhooks.

Every adapter authenticates the provider (Telegram's secret-token header; Meta's HMAC-SHA256 of
the raw body), turns the provider's JSON into channel-neutral messages, and hands each to the
shared guided dialogue (``conversation.receive``), which deduplicates by the provider's id and
queues every answer in the outbox. A forged or unsigned call gets 403 before anything is read or
written. Nothing is sent to a provider from a request.

(``open311`` lives here too, with its own blueprint at /open311/v2/.)
"""

from flask import Blueprint

bp = Blueprint("channels", __name__, url_prefix="/api/v1/channels")

from server.channels import meta, telegram  # noqa: E402,F401  (views register on bp)
