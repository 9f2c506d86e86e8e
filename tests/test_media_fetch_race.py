"""A citizen's photo attached by the worker while a dispatcher changes the same appeal (PostgreSQL).

``media_fetch._attach`` locks the appeal row and reads it afresh before recording ``appeal.photo_added``.
Without that, the worker read the appeal before a concurrent status change committed: its event carried
the old status and took a LOWER id than the change it followed, so live clients (which order one appeal's
events by id) could roll the marker back to the old status. Here a dispatcher's transaction holds the row
while the worker attaches; the worker must wait, then record the photo after the change, with its status.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from server.extensions import db
from server.models import AppealEvent, Attachment, MediaFetch
from server.models.types import utcnow
from server.schemas import AppealIn
from server.services import media_fetch
from server.services.intake import register_appeal
from server.services.lifecycle import Actor, transition
from server.services.replay import lock_appeal
from tests.conftest import APPEAL, make_staff

FACTS = dict(format="JPEG", mime="image/jpeg", width=640, height=480, size_bytes=12_345, sha256="ab" * 32)


def lock_waiters(app) -> int:
    """Backends of this database waiting on a row lock now."""
    with app.app_context():
        n = db.session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'"))
        db.session.rollback()
        return n


def test_a_photo_attached_during_a_status_change_follows_it_with_its_status(backend, committed_app):
    if backend.name != "postgis":
        pytest.skip("SQLite admits one writer at a time (BEGIN IMMEDIATE): no second writer can run meanwhile")
    from server import media

    now = utcnow()
    with committed_app.app_context():
        operator, dispatcher = make_staff("operator"), make_staff("dispatcher")
        appeal = register_appeal(AppealIn(**{**APPEAL, "channel": "telegram"}), actor=Actor.of(operator),
                                 now=now).appeal
        row = MediaFetch(channel="telegram", media_ref="photo-1", appeal_id=appeal.id, state="sending",
                         attempts=1, next_attempt_at=now, lease_until=now + timedelta(minutes=5), created_at=now)
        db.session.add(row)
        db.session.commit()
        appeal_id, dispatcher_id, before = appeal.id, dispatcher.id, appeal.status
        claim = media_fetch.Claim(row.id, "telegram", "photo-1", appeal_id, 1)
        db.session.remove()
    assert before != "rejected"

    holding, release, attached = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def dispatcher_rejects():
        """Lock the appeal as a transition does, wait for the go, then reject and commit."""
        try:
            with committed_app.app_context():
                lock_appeal(appeal_id)
                holding.set()
                release.wait(timeout=10)
                from server.models import Appeal, Staff

                appeal = db.session.get(Appeal, appeal_id)
                transition(appeal, "reject", Actor.of(db.session.get(Staff, dispatcher_id)), utcnow(),
                           reason="Not ours")
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            holding.set()

    def worker_attaches():
        try:
            with committed_app.app_context():
                assert media_fetch._attach(claim, media.ImageFacts(**FACTS), utcnow()) == "sent"
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)
        finally:
            attached.set()

    first = threading.Thread(target=dispatcher_rejects)
    first.start()
    assert holding.wait(timeout=10) and not errors, errors
    second = threading.Thread(target=worker_attaches)
    second.start()
    deadline = time.monotonic() + 5
    while not attached.is_set() and lock_waiters(committed_app) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The worker is waiting for the dispatcher's transaction (it used to go ahead with what it had read).
    assert not attached.is_set(), "the photo was attached while the dispatcher held the appeal"
    release.set()
    for t in (first, second):
        t.join(timeout=30)
    assert not errors, errors

    with committed_app.app_context():
        events = db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal_id)
                                    .order_by(AppealEvent.id)).all()
        kinds = [e.kind for e in events]
        assert kinds[-2:] == ["appeal.rejected", "appeal.photo_added"], kinds
        photo_event = events[-1]
        assert (photo_event.from_status, photo_event.to_status) == ("rejected", "rejected")
        assert db.session.scalar(select(MediaFetch.state).where(MediaFetch.id == claim.id)) == "sent"
        assert len(db.session.scalars(select(Attachment).where(Attachment.appeal_id == appeal_id)).all()) == 1
        db.session.remove()
