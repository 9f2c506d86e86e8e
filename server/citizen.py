"""The citizen's pages and their public JSON: the web report at /report, the tracking page at /t/<token>.

No login anywhere here. What protects each write:

* **CSRF** - the same Flask-WTF check as every cookie write (``server.security``): the page
  first GETs ``/api/v1/public/report/form`` (or the tracking JSON), which returns a token signed
  with the app secret and bound to a random value in the (anonymous, HttpOnly, SameSite=Lax)
  session cookie; the write must send it back as ``X-CSRFToken``. A cross-site page can neither
  read the token nor, with SameSite=Lax, send the cookie on a POST; over HTTPS Flask-WTF also
  checks that the Referer is this site.
* **Rate limit** per client address (``server.ratelimit``; ``JAUAP_REPORT_LIMITS``).
* **Idempotency** - the page's UUID for the report (``Idempotency-Key``): a retry answers with
  the first appeal.
* **The tracking token** (``Appeal.tracking_token``, 192 random bits) is the only key to an
  appeal's public view; unknown tokens get 404, and nothing personal is in that view.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request, send_file, send_from_directory, url_for
from flask_wtf.csrf import generate_csrf
from pydantic import BaseModel

from server.api.common import commit
from server.api.errors import ApiError, error_response
from server.api.messages import message
from server.api.outputs import locale
from server.api.spec import endpoint
from server.models.types import utcnow
from server.ratelimit import client_address
from server.schemas import FeedbackIn, ReportIn
from server.services import citizen_portal as portal
from server.services.errors import NotFound
from server.services.replay import parse_client_uuid

bp = Blueprint("citizen", __name__)
CITIZEN_DIR = Path(__file__).resolve().parent.parent / "pwa" / "citizen"
API = "/api/v1/public"
KEY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "A UUID the page chose for this report: a retry with the same UUID and form gets the first "
    "appeal (200), never a second one; the same UUID with another form is refused (422).",
    "schema": {"type": "string", "format": "uuid"},
}


class ReportForm(BaseModel):
    """What the report page needs before the citizen starts typing."""

    csrf_token: str
    consent_version: str
    language: str
    max_photos: int
    max_photo_bytes: int


class ReportCreated(BaseModel):
    """A filed report: its number and the citizen's tracking link."""

    reg_no: str
    tracking_url: str
    stage: str


class Stage(BaseModel):
    """One public step of the appeal."""

    stage: str
    at: datetime


class TopicRef(BaseModel):
    """A topic, named in the requester's language."""

    code: str
    name: str


class Answer(BaseModel):
    """The centre's answer to the citizen."""

    text: str
    at: datetime | None


class PublicPhoto(BaseModel):
    """An "after" photo: re-encoded derivatives only (no original, no metadata)."""

    thumb: str
    large: str


class GivenFeedback(BaseModel):
    """The verdict the citizen gave on this answer."""

    verdict: str
    rating: int | None
    at: datetime


class FeedbackState(BaseModel):
    """Whether the citizen can confirm or dispute now, and until when."""

    open: bool
    until: datetime | None
    given: GivenFeedback | None


class TrackingOut(BaseModel):
    """The public view of an appeal for the holder of its tracking link."""

    reg_no: str
    type: str
    topic: TopicRef
    stage: str
    created_at: datetime
    due_at: datetime | None
    timeline: list[Stage]
    answer: Answer | None
    photos: list[PublicPhoto]
    feedback: FeedbackState
    csrf_token: str


def public(view):
    """Mark a view as needing no login in the OpenAPI document."""
    view.public = True
    return view


def _private_headers(response, *, cache: str = "no-store"):
    # The tracking token is a password to the appeal: keep it out of caches, referrers and search engines.
    response.headers["Cache-Control"] = cache
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- pages ----------------------------------------------------------------------------------------


@bp.get("/report")
def report_page():
    """The citizen web report (static page in pwa/citizen/)."""
    response = send_from_directory(CITIZEN_DIR, "report.html", max_age=0)
    return _private_headers(response, cache="no-cache")


@bp.get("/t/<token>")
def tracking_page(token: str):
    """The tracking page of one appeal; 404 for a token that is not one."""
    try:
        portal.appeal_by_token(token)
    except NotFound:
        abort(404)
    return _private_headers(send_from_directory(CITIZEN_DIR, "track.html", max_age=0))


@bp.get("/citizen/<path:filename>")
def asset(filename: str):
    """Static files of the citizen pages (scripts, styles; no data)."""
    response = send_from_directory(CITIZEN_DIR, filename, max_age=300)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- JSON -----------------------------------------------------------------------------------------


@bp.get(f"{API}/report/form")
@public
@endpoint(responses={200: ReportForm}, tags=["citizen"])
def report_form():
    """Start a report: the CSRF token for this browser, the consent version, the language, the photo limits."""
    out = ReportForm(csrf_token=generate_csrf(), consent_version=portal.CONSENT_VERSION, language=locale(),
                     max_photos=portal.MAX_PHOTOS, max_photo_bytes=portal.MAX_PHOTO_BYTES)
    return _private_headers(jsonify(out.model_dump()))


def _report_key() -> str:
    raw = request.headers.get("Idempotency-Key")
    if raw is None or not raw.strip():
        raise ApiError(400, "report_key_required", [{"field": "Idempotency-Key", "code": "report_key_required",
                                                      "message": message("report_key_required")}])
    try:
        return parse_client_uuid(raw)
    except ValueError:
        raise ApiError(400, "bad_client_uuid", [{"field": "Idempotency-Key", "code": "bad_client_uuid",
                                                  "message": message("bad_client_uuid")}]) from None


@bp.post(f"{API}/reports")
@public
@endpoint(form=ReportIn, optional_files=["photo"], responses={201: ReportCreated, 200: ReportCreated, 429: None},
          tags=["citizen"], headers=[KEY_HEADER], max_content_length=portal.MAX_REQUEST_BYTES)
def submit_report(form: ReportIn):
    """File a report (multipart: the fields, and up to 3 ``photo`` parts); no login, consent required."""
    # One byte over the limit is enough to tell "too large"; the service refuses it.
    photos = [f.stream.read(portal.MAX_PHOTO_BYTES + 1) for f in request.files.getlist("photo")]
    result = portal.submit_report(form, photos, client_uuid=_report_key(),
                                  client=client_address(request, current_app.config["JAUAP_PROXY_HOPS"]),
                                  now=utcnow())
    commit(result.events)
    appeal = result.appeal
    out = ReportCreated(reg_no=appeal.reg_no, tracking_url=url_for("citizen.tracking_page",
                                                                   token=appeal.tracking_token),
                        stage=portal.public_stage(appeal.status))
    return _private_headers(jsonify(out.model_dump())), 201 if result.created else 200


def _tracking_json(token: str):
    view = portal.tracking_view(token, utcnow(), locale())
    view["photos"] = [{variant: url_for("citizen.tracking_photo", token=token, public_id=pid, variant=variant)
                       for variant in portal.PUBLIC_VARIANTS} for pid in view["photos"]]
    out = TrackingOut(**view, csrf_token=generate_csrf())
    return _private_headers(jsonify(out.model_dump(mode="json")))


@bp.get(f"{API}/tracking/<token>")
@public
@endpoint(responses={200: TrackingOut}, tags=["citizen"])
def tracking(token: str):
    """The public view of an appeal: stages, the answer, "after" photos, and whether a verdict can be given."""
    return _tracking_json(token)


@bp.post(f"{API}/tracking/<token>/feedback")
@public
@endpoint(body=FeedbackIn, responses={200: TrackingOut}, tags=["citizen"])
def give_feedback(token: str, body: FeedbackIn):
    """Confirm or dispute the fix within the window after the answer, with a 1-5 rating (once per answer)."""
    events = portal.give_feedback(token, body, utcnow())
    commit(events)
    return _tracking_json(token)


@bp.get(f"{API}/tracking/<token>/photos/<public_id>/<variant>")
@public
@endpoint(tags=["citizen"])
def tracking_photo(token: str, public_id: str, variant: str):
    """A ``thumb`` or ``large`` derivative of an "after" photo of this appeal (never the original)."""
    path = portal.after_photo_file(token, public_id, variant)
    response = send_file(path, mimetype="image/jpeg", conditional=False, etag=False, max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return _private_headers(response)


@bp.errorhandler(portal.RateLimited)
def _rate_limited(exc: portal.RateLimited):
    params = dict(exc.params)
    detail = params.pop("detail", None)
    response, status = error_response(exc.status, exc.code, detail=detail, **params)
    response.headers["Retry-After"] = str((detail or {}).get("retry_after", 60))
    return response, status
