"""The topic catalogue."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from server.api import bp
from server.api.outputs import TopicList, TopicOut, locale
from server.api.spec import endpoint
from server.extensions import db
from server.models import Topic


@bp.get("/topics")
@endpoint(responses={200: TopicList}, tags=["catalogue"])
def list_topics():
    """The topics appeals are filed under, named in the requester's language."""
    lang = locale()
    topics = db.session.scalars(select(Topic).where(Topic.active.is_(True)).order_by(Topic.sort_order, Topic.code))
    return jsonify([TopicOut(code=t.code, name=t.name(lang)).model_dump() for t in topics])
