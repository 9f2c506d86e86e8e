"""What every delivery channel looks like: ``Channel.send`` returns a ``DeliveryResult``.

A channel is plain Python (no Flask, no database): the outbox worker hands it a
recipient and a payload and records what the result says. The result is one of
four outcomes, because the worker must act differently on each:

* ``ok``        delivered (the remote accepted it);
* ``retry``     try again later (rate limit, server error, network); ``retry_after``
                is the remote's wish in seconds, when it said one;
* ``gone``      the recipient no longer exists (Web Push 404/410): forget it;
* ``permanent`` the message itself is wrong (other 4xx, oversized payload): never retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Outcome = Literal["ok", "retry", "gone", "permanent"]


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt."""

    outcome: Outcome
    status: int | None = None  # the remote's HTTP status, when there was an answer
    retry_after: float | None = None  # seconds the remote asked us to wait (Retry-After)
    error: str | None = None  # a short reason for the log / the outbox row

    @property
    def ok(self) -> bool:
        """True when the message was delivered."""
        return self.outcome == "ok"

    @classmethod
    def delivered(cls, status: int | None = None) -> DeliveryResult:
        """The remote accepted the message."""
        return cls("ok", status)

    @classmethod
    def retry(cls, status: int | None = None, retry_after: float | None = None,
              error: str | None = None) -> DeliveryResult:
        """A transient failure: send again later."""
        return cls("retry", status, retry_after, error)

    @classmethod
    def gone(cls, status: int | None = None, error: str | None = None) -> DeliveryResult:
        """The recipient does not exist any more: delete it."""
        return cls("gone", status, None, error)

    @classmethod
    def permanent(cls, status: int | None = None, error: str | None = None) -> DeliveryResult:
        """The message cannot be delivered as it is: do not retry."""
        return cls("permanent", status, None, error)


@runtime_checkable
class Channel(Protocol):
    """A way to reach someone. Implementations must be safe to reuse for many sends."""

    name: str

    def send(self, recipient: Mapping, payload: Mapping) -> DeliveryResult:
        """Deliver ``payload`` to ``recipient``; never raises for remote failures."""
        ...

    def close(self) -> None:
        """Release connections (the registry calls it on shutdown)."""
        ...


class UnknownChannel(KeyError):
    """No channel is registered under that name."""


class Registry:
    """Channels by name (``webpush``, later ``telegram``, ``sms`` ...)."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def register(self, channel: Channel) -> Channel:
        """Add (or replace) ``channel`` under its ``name``; returns it."""
        previous = self._channels.get(channel.name)
        if previous is not None and previous is not channel:
            previous.close()
        self._channels[channel.name] = channel
        return channel

    def get(self, name: str) -> Channel:
        """The channel called ``name``, or UnknownChannel."""
        try:
            return self._channels[name]
        except KeyError:
            raise UnknownChannel(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._channels

    def names(self) -> list[str]:
        """Registered channel names, sorted."""
        return sorted(self._channels)

    def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            channel.close()
