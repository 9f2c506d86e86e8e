"""Outbound delivery channels (plain Python, no Flask): a channel sends, the outbox worker decides.

``base`` defines the ``Channel`` protocol, ``DeliveryResult`` and the ``Registry``;
``webpush`` is the Web Push channel. Later: telegram, whatsapp, meta, sms.
"""

from notifications.base import Channel, DeliveryResult, Registry, UnknownChannel
from notifications.webpush import EndpointPolicy, WebPushSender, load_or_create_key, public_key_b64

__all__ = [
    "Channel",
    "DeliveryResult",
    "EndpointPolicy",
    "Registry",
    "UnknownChannel",
    "WebPushSender",
    "load_or_create_key",
    "public_key_b64",
]
