"""Background loops: the periodic pass (escalations, SLA warnings, retention) and the outbox.

``tick(now)`` does one pass in one transaction. On PostgreSQL it first takes a
transaction-level advisory lock, so with several workers only one runs a given
pass; the others skip it. ``deliver_once`` sends due outbox rows (Web Push) every
JAUAP_OUTBOX_INTERVAL_S seconds in its own loop, so a slow push service never delays
the pass; several workers may deliver at once (rows are claimed with SKIP LOCKED).
The same loop chains the audit entries that requests recorded (``seal_audit``,
``services.audit.seal_pending``), so they join the chain within seconds.
The embedded default runs both loops inside the web process (``flask serve``);
production runs ``flask worker`` processes.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from flask import Flask
from sqlalchemy import text

from server.extensions import db, socketio
from server.models.types import utcnow
from server.realtime import publish
from server.services import audit, clock, dispatch, media_fetch, outbox, positions, push

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
    # SLA marks first: an at-risk mark sends the assignee's sla.warning, which warn_sla then skips.
    sla_events = clock.sla_tick(now)
    purged = positions.purge_history(now)
    # Pushes are queued in this same transaction (a failed pass queues nothing).
    warned = push.warn_sla(now)
    queued = push.queue_for_events(events, now)
    stale = push.purge_stale_subscriptions(now)
    finished = outbox.purge_finished(now)
    messages = publish.prepare(events + sla_events)
    db.session.commit()
    publish.emit_all(messages)
    result = {"escalated": len(events), "positions_purged": purged}
    extra = {"sla_marked": len(sla_events), "sla_warned": warned, "pushes_queued": queued,
             "subscriptions_purged": stale, "outbox_purged": finished}
    result.update({k: v for k, v in extra.items() if v})  # only what happened, to keep the log short
    return result


def deliver_once(app: Flask, limit: int = outbox.BATCH) -> dict:
    """Deliver one batch of due outbox rows (never raises: a failure is logged and retried next time)."""
    with app.app_context():
        try:
            return outbox.deliver_due(utcnow(), limit)
        except Exception:
            db.session.rollback()
            log.exception("outbox delivery failed")
            return {"claimed": 0, "error": True}
        finally:
            fetch_media(app)  # citizens' chat photos ride the same loop
            db.session.remove()


def fetch_media(app: Flask) -> dict:
    """Fetch one batch of citizens' chat photos from their providers (never raises)."""
    with app.app_context():
        try:
            return media_fetch.fetch_due(utcnow())
        except Exception:
            db.session.rollback()
            log.exception("media fetch failed")
            return {"claimed": 0, "error": True}


def seal_audit(app: Flask) -> int:
    """Chain one batch of pending audit entries (never raises); returns how many were sealed.

    A sealer that finds another at work (PostgreSQL's chain lock taken) skips this round.
    """
    with app.app_context():
        try:
            return audit.seal_pending(wait=False)
        except Exception:
            db.session.rollback()
            log.exception("audit sealing failed")
            return 0
        finally:
            db.session.remove()


def deliver_forever(app: Flask, interval_s: float | None = None, stop: threading.Event | None = None) -> None:
    """Deliver due outbox rows and seal pending audit entries every ``interval_s`` (JAUAP_OUTBOX_INTERVAL_S).

    At once again after a full batch of either.
    """
    interval = app.config.get("JAUAP_OUTBOX_INTERVAL_S", 1.5) if interval_s is None else interval_s
    while stop is None or not stop.is_set():
        result = deliver_once(app)
        sealed = seal_audit(app)
        if result.get("claimed", 0) >= outbox.BATCH or sealed >= audit.SEAL_BATCH:
            continue  # a backlog: keep going
        if stop is not None:
            stop.wait(interval)
        else:
            time.sleep(interval)


def start_outbox_thread(app: Flask, interval_s: float | None = None) -> threading.Thread:
    """The outbox loop as a daemon thread (a greenlet where gevent has patched threading)."""
    thread = threading.Thread(target=deliver_forever, args=(app, interval_s), name="jauap-outbox", daemon=True)
    thread.start()
    return thread


def run_forever(app: Flask, interval_s: float = 30.0, iterations: int | None = None) -> None:
    """Run ``tick`` every ``interval_s`` seconds and the outbox loop beside it.

    ``iterations`` bounds the passes (tests, ``flask worker --once``); then the outbox is
    delivered (and the audit sealed) once after each pass instead of in its own loop.
    """
    if iterations is None:
        start_outbox_thread(app)
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
        if iterations is not None:
            deliver_once(app)
            seal_audit(app)
        done += 1
        if iterations is None or done < iterations:
            socketio.sleep(interval_s)


def start_in_process(app: Flask, interval_s: float = 30.0) -> None:
    """The embedded default: the loops as background tasks of the web process."""
    socketio.start_background_task(run_forever, app, interval_s)
