"""Background loops: escalate unaccepted assignments, purge old positions (later: SLA tick, outbox).

``tick(now)`` does one pass in one transaction. On PostgreSQL it first takes a
transaction-level advisory lock, so with several workers only one runs a given
pass; the others skip it. The embedded default runs the loop inside the web
process (``flask serve``); production runs ``flask worker`` processes.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask
from sqlalchemy import text

from server.extensions import db, socketio
from server.models.types import utcnow
from server.realtime import publish
from server.services import dispatch, positions

log = logging.getLogger(__name__)
TICK_LOCK = 109_001  # advisory lock key for the periodic pass


def _locked() -> bool:
    if db.session.get_bind().dialect.name != "postgresql":
        return True
    return bool(db.session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": TICK_LOCK}).scalar())


def tick(now: datetime) -> dict:
    """One pass of the periodic work; returns what it did."""
    if not _locked():
        db.session.rollback()
        return {"skipped": True}
    events = dispatch.escalate_unaccepted(now)
    purged = positions.purge_history(now)
    messages = publish.prepare(events)
    db.session.commit()
    publish.emit_all(messages)
    return {"escalated": len(events), "positions_purged": purged}


def run_forever(app: Flask, interval_s: float = 30.0, iterations: int | None = None) -> None:
    """Run ``tick`` every ``interval_s`` seconds (``iterations`` bounds it, for tests)."""
    done = 0
    while iterations is None or done < iterations:
        with app.app_context():
            try:
                result = tick(utcnow())
                if result.get("escalated"):
                    log.info("tick: %s", result)
            except Exception:
                db.session.rollback()
                log.exception("worker tick failed")
            finally:
                db.session.remove()
        done += 1
        if iterations is None or done < iterations:
            socketio.sleep(interval_s)


def start_in_process(app: Flask, interval_s: float = 30.0) -> None:
    """The embedded default: the loop as a background task of the web process."""
    socketio.start_background_task(run_forever, app, interval_s)
