"""The citizens' reply templates, edited by the methodologist: list, save one, reset one to its default."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import jsonify
from pydantic import BaseModel, Field

from server.api import bp
from server.api.common import commit, viewer
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import Strict
from server.services import replies

Moment = Literal["registered", "assigned", "resolved", "extended", "forwarded", "answered"]
TemplateType = Literal["*", "consultation", "incident", "proposal", "complaint", "gratitude"]
TemplateLanguage = Literal["kk", "ru", "en"]


class TemplateKey(Strict):
    """Which template: the moment, the appeal type (``*`` for any) and the language."""

    moment: Moment = Field(description="registered, assigned, resolved, extended, forwarded or answered.")
    appeal_type: TemplateType = Field(default="*", description="An appeal type, or * for every type.")
    language: TemplateLanguage = Field(description="kk, ru or en.")


class TemplateIn(TemplateKey):
    """A template's new text: placeholders {reg_no} {status} {answer} {link} {due} {topic} {reason} only."""

    body: str = Field(min_length=1, max_length=4000, description="The text; {{ and }} for literal braces.")


class TemplateOut(BaseModel):
    """One template: its text, whether it is the methodologist's (custom) or built in, and the default."""

    moment: str
    appeal_type: str
    language: str
    body: str
    custom: bool
    default: str | None
    updated_at: datetime | None
    updated_by: str | None


class TemplateList(BaseModel):
    """Every template, with what may be used in them."""

    placeholders: list[str]
    moments: list[str]
    appeal_types: list[str]
    languages: list[str]
    templates: list[TemplateOut]


def _out(view: replies.TemplateView) -> dict:
    return TemplateOut(**view.__dict__).model_dump(mode="json")


@bp.get("/reply-templates")
@endpoint(responses={200: TemplateList}, tags=["reply templates"])
def list_reply_templates():
    """List the reply templates (the built-in ones and the methodologist's)."""
    return jsonify({"placeholders": list(replies.PLACEHOLDERS), "moments": list(replies.MOMENTS),
                    "appeal_types": list(replies.TEMPLATE_TYPES), "languages": ["kk", "ru", "en"],
                    "templates": [_out(v) for v in replies.list_templates()]})


@bp.put("/reply-templates")
@endpoint(body=TemplateIn, responses={200: TemplateOut, 422: None}, tags=["reply templates"])
def save_reply_template(body: TemplateIn):
    """Save the text of one template (422 for an unknown placeholder)."""
    view = replies.save_template(body.moment, body.appeal_type, body.language, body.body, viewer(), utcnow())
    commit()
    return jsonify(_out(view))


@bp.delete("/reply-templates")
@endpoint(query=TemplateKey, responses={204: None, 404: None}, tags=["reply templates"])
def reset_reply_template(query: TemplateKey):
    """Drop the saved text of one template: the built-in default applies again."""
    replies.reset_template(query.moment, query.appeal_type, query.language)
    commit()
    return "", 204
