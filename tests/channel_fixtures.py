"""Fixtures and helpers shared by the channel tests: providers pointed at a local stub, recorded payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select

from server.extensions import db
from server.models import OutboundMessage
from tests.provider_stub import GRAPH_TOKEN, PAGE_TOKEN, PHONE_ID, TELEGRAM_TOKEN, ProviderStub

PAYLOADS = Path(__file__).parent / "channel_payloads"
TG_SECRET = "tg-webhook-secret_0123456789"
APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "jauap-verify-token"
PUBLIC_URL = "https://109.turkestan.kz"
TG_URL = "/api/v1/channels/telegram/webhook"
META_URL = "/api/v1/channels/meta/webhook"


def settings(stub: ProviderStub) -> dict:
    """Every channel configured, every provider URL on the stub."""
    return {
        "JAUAP_PUBLIC_URL": PUBLIC_URL,
        "JAUAP_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "JAUAP_TELEGRAM_SECRET": TG_SECRET,
        "JAUAP_TELEGRAM_API_BASE": stub.base,
        "JAUAP_META_APP_SECRET": APP_SECRET,
        "JAUAP_META_VERIFY_TOKEN": VERIFY_TOKEN,
        "JAUAP_META_PAGE_TOKEN": PAGE_TOKEN,
        "JAUAP_WHATSAPP_TOKEN": GRAPH_TOKEN,
        "JAUAP_WHATSAPP_PHONE_ID": PHONE_ID,
        "JAUAP_GRAPH_API_BASE": stub.graph,
        "JAUAP_CHANNELS_ALLOW_LOOPBACK": True,
        "JAUAP_SMS_URL": f"{stub.base}/sms",
        "JAUAP_SMS_TOKEN": "sms-gateway-token",
        "JAUAP_SMS_SENDER": "Jauap109",
    }


@contextmanager
def configured_providers(app):
    """The provider stub, with the app's channels configured to use it (restored afterwards)."""
    with ProviderStub() as stub:
        values = settings(stub)
        saved = {k: app.config.get(k) for k in values}
        app.config.update(values)
        app.extensions.pop("jauap_channels", None)  # the outbox registry is rebuilt with these settings
        try:
            yield stub
        finally:
            app.config.update(saved)
            registry = app.extensions.pop("jauap_channels", None)
            if registry is not None:
                registry.close()


def load(name: str) -> dict:
    """A recorded payload (a fresh copy)."""
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text(encoding="utf-8")))


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    """The X-Hub-Signature-256 value Meta sends for ``raw``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def jpeg(width: int = 640, height: int = 480, color=(200, 90, 40)) -> bytes:
    """A real JPEG photo."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def count(model, *where) -> int:
    """Rows of ``model`` (matching ``where``)."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def outbox(channel: str | None = None, recipient: str | None = None) -> list[OutboundMessage]:
    """Outbox rows, oldest first."""
    query = select(OutboundMessage).order_by(OutboundMessage.id)
    if channel:
        query = query.where(OutboundMessage.channel == channel)
    if recipient:
        query = query.where(OutboundMessage.recipient == recipient)
    return list(db.session.scalars(query))
