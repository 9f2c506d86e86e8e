"""SMS for citizens who called 109: a gateway interface and a plain HTTP implementation.

:class:`SmsGateway` is what the outbox sees (``name = "sms"``): ``send`` takes the phone number
from ``recipient['address']`` and the text from ``payload['text']`` and calls :meth:`send_sms`.
An operator's SMS provider is plugged in by subclassing it; :class:`HttpSmsGateway` covers the
usual "POST JSON with a bearer token" kind, configured by environment:

    POST <JAUAP_SMS_URL>
    Authorization: Bearer <JAUAP_SMS_TOKEN>        (when set)
    {"to": "+77015551234", "text": "...", "sender": "<JAUAP_SMS_SENDER>"}

2xx is delivered; 429 and 5xx retry (honouring Retry-After); other answers are permanent.
Numbers are sent in E.164 (``+`` and digits); anything else is refused without a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import requests

from notifications.base import DeliveryResult
from notifications.provider import DEFAULT_TIMEOUT_S, clip, make_session, network_failure, retry_after_of

SMS_LIMIT = 670  # ten concatenated UCS-2 parts: Kazakh and Russian texts are UCS-2


def e164(phone: str | None) -> str | None:
    """``phone`` as ``+<digits>`` (8 7xx... read as the Kazakh +7 7xx...), or None if it is not a number."""
    digits = re.sub(r"[\s()\-.]", "", phone or "")
    if digits.startswith("8") and len(digits) == 11:
        digits = "+7" + digits[1:]
    if not digits.startswith("+"):
        digits = "+" + digits
    return digits if re.fullmatch(r"\+[1-9]\d{7,14}", digits) else None


class SmsGateway:
    """The SMS channel: subclasses implement :meth:`send_sms`."""

    name = "sms"

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Send ``payload['text']`` to the phone number ``recipient['address']``."""
        phone = e164(recipient.get("address"))
        if phone is None:
            return DeliveryResult.permanent(None, "not a phone number")
        text = (payload.get("text") or "").strip()
        if not text:
            return DeliveryResult.permanent(None, "empty text")
        return self.send_sms(phone, clip(text, SMS_LIMIT))

    def send_sms(self, phone: str, text: str) -> DeliveryResult:
        """Hand one SMS to the provider."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (none by default)."""


class HttpSmsGateway(SmsGateway):
    """An SMS provider reached by an HTTP POST of JSON (see the module docstring)."""

    def __init__(self, url: str, token: str | None = None, sender: str | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, session: requests.Session | None = None):
        self._url = url
        self._token = token
        self._sender = sender
        self.timeout_s = timeout_s
        self._session = session or make_session()

    def send_sms(self, phone: str, text: str) -> DeliveryResult:
        """POST the message to the gateway."""
        body = {"to": phone, "text": text}
        if self._sender:
            body["sender"] = self._sender
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = self._session.post(self._url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            return network_failure(exc, [self._token])
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult.delivered(status)
        reason = f"HTTP {status}: {response.text[:200]}"
        if status == 429 or status >= 500:
            return DeliveryResult.retry(status, retry_after_of(response), reason)
        return DeliveryResult.permanent(status, reason)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
