"""Quality control: the inspector's queue and decisions, the QC analyst's call-backs, unit quality figures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import current_app, jsonify, url_for
from pydantic import Field

from server.api import bp
from server.api.common import commit, viewer
from server.api.outputs import locale
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import AwareTime, Strict, Text
from server.services import audit, qc


class QueueQuery(Strict):
    """How many appeals to list."""

    limit: int = Field(default=50, ge=1, le=200)


class ApproveIn(Strict):
    """The inspector's approval: the answer the citizen gets."""

    answer: Annotated[Text, Field(min_length=1, max_length=4000)]


class ReturnIn(Strict):
    """Why the work goes back to the assignee."""

    reason: Text | None = Field(default=None, max_length=1000)


class CallbackIn(Strict):
    """The outcome of one call-back."""

    reached: bool
    satisfied: int | None = Field(default=None, ge=1, le=5)
    comment: Text | None = Field(default=None, max_length=2000)


class UnitsQuery(Strict):
    """The period the figures cover (from ``since``; all time when absent)."""

    since: AwareTime | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _photo(photo) -> dict:
    return {"id": photo.public_id, "kind": photo.kind, "created_at": _iso(photo.created_at),
            "thumb": url_for("api.get_photo", public_id=photo.public_id, variant="thumb"),
            "large": url_for("api.get_photo", public_id=photo.public_id, variant="large"),
            "exif_distance_m": photo.exif_distance_m}


def _item(ev: qc.Evidence) -> dict:
    a = ev.appeal
    lang = locale()
    return {"id": a.id, "reg_no": a.reg_no, "type": a.type, "topic": a.topic_code,
            "topic_name": a.topic.name(lang) if a.topic else a.topic_code, "description": a.description,
            "address": a.address, "unit": a.unit.code if a.unit else None,
            "assignee": a.assignee.full_name or a.assignee.username if a.assignee else None,
            "flagged": a.flagged_at is not None, "resolved_at": _iso(ev.resolved_at), "due_at": _iso(a.due_at),
            "photos": [_photo(p) for p in ev.photos], "points": ev.points}


@bp.get("/qc/queue")
@endpoint(query=QueueQuery, tags=["quality"])
def qc_queue(query: QueueQuery):
    """Resolved appeals awaiting verification, flagged first, with their evidence."""
    return jsonify({"items": [_item(e) for e in qc.inspection_queue(query.limit)]})


@bp.post("/qc/appeals/<int:appeal_id>/approve")
@endpoint(body=ApproveIn, tags=["quality"])
def qc_approve(appeal_id: int, body: ApproveIn):
    """Verify the work; the answer is queued to the citizen on their channel."""
    events = qc.approve(appeal_id, viewer(), body.answer, utcnow())
    commit(events)
    return jsonify({"id": appeal_id, "status": events[-1].to_status})


@bp.post("/qc/appeals/<int:appeal_id>/return")
@endpoint(body=ReturnIn, tags=["quality"])
def qc_return(appeal_id: int, body: ReturnIn):
    """Return the work to the assignee with a reason."""
    events = qc.return_work(appeal_id, viewer(), body.reason or "", utcnow())
    commit(events)
    return jsonify({"id": appeal_id, "status": events[-1].to_status})


def _callback(row, staff, now) -> dict:
    a = row.appeal
    # The analyst phones the citizen: the contact is served, so it is audited (services.audit).
    audit.note_contact_view(a.id, staff, now)
    citizen = a.citizen
    return {"id": row.id, "appeal_id": a.id, "reg_no": a.reg_no, "topic": a.topic_code,
            "topic_name": a.topic.name(locale()) if a.topic else a.topic_code,
            "unit": a.unit.code if a.unit else None, "closed_at": _iso(a.closed_at), "answer": a.answer_text,
            "sampled_on": row.sampled_on.isoformat(),
            "citizen": {"name": citizen.name, "phone": citizen.phone, "language": citizen.language}
            if citizen else None}


@bp.get("/qc/callbacks")
@endpoint(tags=["quality"])
def qc_callbacks():
    """Today's call-back sample (drawn on first request of the day) and any still open."""
    staff, now = viewer(), utcnow()
    qc.draw_callbacks(now, share=current_app.config["JAUAP_CALLBACK_SAMPLE_SHARE"],
                      per_day=current_app.config["JAUAP_CALLBACK_PER_DAY"])
    commit()
    return jsonify({"items": [_callback(r, staff, now) for r in qc.open_callbacks(now)]})


@bp.post("/qc/callbacks/<int:sample_id>")
@endpoint(body=CallbackIn, tags=["quality"])
def qc_record_callback(sample_id: int, body: CallbackIn):
    """Record what the citizen said on the call-back."""
    row = qc.record_callback(sample_id, viewer(), utcnow(), reached=body.reached, satisfied=body.satisfied,
                             comment=body.comment)
    commit()
    return jsonify({"id": row.id, "reached": row.reached, "satisfied": row.satisfied, "comment": row.comment})


@bp.get("/qc/units")
@endpoint(query=UnitsQuery, tags=["quality"])
def qc_units(query: UnitsQuery):
    """Each unit's quality figures: ratings, disputes, call-back satisfaction, returned work."""
    return jsonify({"items": qc.unit_quality(query.since)})
