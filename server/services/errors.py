"""Errors raised by services; the API layer turns them into translated 4xx responses."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the business rules refuse. ``code`` is stable; ``params`` fill the message."""

    status = 400

    def __init__(self, code: str, field: str | None = None, **params):
        super().__init__(code)
        self.code = code
        self.field = field
        self.params = params


class NotFound(ServiceError):
    """The object does not exist, or the caller may not know that it exists."""

    status = 404


class Forbidden(ServiceError):
    """The caller is known but not allowed to do this."""

    status = 403


class Conflict(ServiceError):
    """The request conflicts with the current state (idempotency key reuse, stale state)."""

    status = 409


class Unprocessable(ServiceError):
    """Well-formed but semantically wrong (illegal transition, key reused with another body)."""

    status = 422
