"""A small per-app cache for admin-edited tables (the SLA policies, the calendar overrides).

The value is loaded from the database on first use, kept in ``app.extensions`` for
``ttl`` seconds (so a worker process sees an edit made in another one within that
time), and dropped by :meth:`AppCache.invalidate` after every edit made here.
Outside an app context the cache holds nothing and answers ``outside()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from flask import current_app, has_app_context

from server.extensions import db
from server.services.errors import NotFound

T = TypeVar("T")


class AppCache(Generic[T]):
    """``load()``'s value, cached per app under ``key`` for ``ttl`` seconds."""

    def __init__(self, key: str, load: Callable[[], T], ttl: float, outside: Callable[[], T]):
        self.key = key
        self.load = load
        self.ttl = ttl
        self.outside = outside

    def get(self) -> T:
        """The cached value, loaded again when older than ``ttl`` (``outside()`` with no app context)."""
        if not has_app_context():
            return self.outside()
        cached = current_app.extensions.get(self.key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        value = self.load()
        current_app.extensions[self.key] = (time.monotonic(), value)
        return value

    def invalidate(self) -> None:
        """Drop the cached value (called after every edit)."""
        if has_app_context():
            current_app.extensions.pop(self.key, None)

    def edited(self) -> None:
        """Flush an edit of the cached table, then drop the cached value."""
        db.session.flush()
        self.invalidate()

    def saved(self, row, staff, now):
        """Stamp who (``staff`` or None) changed ``row`` and when, flush, drop the cached value; ``row``."""
        row.updated_by_id = staff.id if staff is not None else None
        row.updated_at = now
        self.edited()
        return row

    def delete_row(self, model, key, missing: str) -> None:
        """Delete the row of ``model`` with primary key ``key`` (``NotFound(missing)`` when there is none)."""
        row = db.session.get(model, key)
        if row is None:
            raise NotFound(missing)
        db.session.delete(row)
        self.edited()
