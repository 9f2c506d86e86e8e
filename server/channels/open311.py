"""Open311 GeoReport v2 at /open311/v2/, in XML and JSON, plus mySociety's servicerequestupdates.

Views are thin: parse the format, authenticate the api_key where the spec asks for
one, call one function of ``server.services.open311``, and render. Each view builds
one dict (the JSON shape) and :func:`render` writes it as JSON or as the spec's XML
(lists become a container of singular elements: ``services/service``,
``service_requests/request``, ``errors/error`` ...), so both formats carry the same data.
Errors follow the spec: ``[{"code": 400, "description": "..."}]`` or
``<errors><error><code>400</code><description>...</description></error></errors>``.

The endpoints are public in the policy table (they authenticate with ``api_key``
themselves) and exempt from CSRF: they are form posts from other servers, never a
browser session.
"""

from __future__ import annotations

import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime

from flask import Blueprint, Response, g, request, send_file, url_for
from flask_babel import get_locale
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from server import geosql, ratelimit
from server.api.common import commit
from server.extensions import db
from server.models import ApiKey, Appeal, Topic
from server.models.types import utcnow
from server.services import apikeys
from server.services import open311 as service
from server.services.errors import ServiceError
from server.services.open311 import Open311Error

log = logging.getLogger(__name__)

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json"}
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-24T00:00:00+05:00"  # when this API last changed shape
SINGULAR = {"service_requests": "request", "service_request_updates": "request_update", "services": "service",
            "attributes": "attribute", "values": "value", "errors": "error", "endpoints": "endpoint",
            "formats": "format"}
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
DISCOVERY_TEXT = {
    "contact": {
        "en": "Turkestan 109 contact centre: call 109 or write to the centre's administrators.",
        "ru": "Единый контакт-центр 109 Туркестана: позвоните 109 или напишите администраторам центра.",
        "kk": "Түркістанның 109 бірыңғай байланыс орталығы: 109-ға қоңырау шалыңыз немесе орталық әкімшілеріне "
              "жазыңыз.",
    },
    "key_service": {
        "en": "API keys are issued by the 109 centre's administrators on request.",
        "ru": "Ключи API выдают администраторы центра 109 по запросу.",
        "kk": "API кілттерін 109 орталығының әкімшілері сұрау бойынша береді.",
    },
}


# --- rendering --------------------------------------------------------------------------------------------------


def _scalar(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID.sub("", str(value))


def _element(tag: str, value) -> ET.Element:
    node = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            node.append(_element(key, child))
    elif isinstance(value, list):
        for item in value:
            node.append(_element(SINGULAR.get(tag, tag.removesuffix("s")), item))
    else:
        node.text = _scalar(value)
    return node


def to_xml(root: str, payload) -> bytes:
    """The spec's XML for ``payload`` under the element ``root`` (UTF-8, with the declaration)."""
    body = ET.tostring(_element(root, payload), encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


def render(root: str, payload, fmt: str, status: int = 200) -> Response:
    """``payload`` (the JSON shape) as JSON, or as XML under ``root``."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8") if fmt == "json" else to_xml(root, payload)
    return Response(body, status=status, content_type=FORMATS.get(fmt, FORMATS["xml"]))


def render_error(status: int, description: str) -> Response:
    """The spec's error list in the request's format (XML when the format itself was wrong)."""
    return render("errors", [{"code": status, "description": description}], g.get("open311_format", "xml"), status)


# --- request helpers --------------------------------------------------------------------------------------------


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}: use .xml or .json")
    g.open311_format = fmt
    return fmt


def _lang() -> str:
    """``locale`` (kk, ru, en; a region suffix is ignored) if given, else the usual negotiation."""
    asked = (request.values.get("locale") or "").strip().lower()[:2]
    return asked if asked in service.LOCALES else str(get_locale() or "ru")


def _api_key(now: datetime) -> ApiKey:
    presented = request.values.get("api_key")
    if not presented:
        raise Open311Error(403, "api_key was not provided")
    key = apikeys.authenticate(presented, now=now)
    if key is None:
        raise Open311Error(403, "api_key is not valid (unknown or revoked)")
    # Counted per key after it is known valid, so an unknown key cannot use up a partner's allowance.
    wait = ratelimit.check_open311(key.id, time.time())
    if wait is not None:
        raise Open311RateLimited(wait)
    return key


class Open311RateLimited(Open311Error):
    """An API key over JAUAP_OPEN311_LIMITS: the spec's error list with 429 and ``Retry-After``."""

    def __init__(self, retry_after: int):
        super().__init__(429, f"too many requests for this api_key; try again in {retry_after} s")
        self.retry_after = max(1, int(retry_after))


# --- what leaves the server ---------------------------------------------------------------------------------------


def service_dict(topic: Topic, lang: str) -> dict:
    """One entry of the service list."""
    info = service.service_info(topic.code)
    return {
        "service_code": topic.code,
        "service_name": topic.name(lang),
        "description": service.text(info.description, lang) or topic.name(lang),
        "metadata": bool(info.attributes),
        "type": "realtime",
        "keywords": service.text(info.keywords, lang),
        "group": service.text(service.GROUPS[info.group], lang),
    }


def definition_dict(topic: Topic, lang: str) -> dict:
    """A service definition: the topic's attributes."""
    attributes = []
    for order, attr in enumerate(service.service_info(topic.code).attributes, start=1):
        item = {
            "variable": True,
            "code": attr.code,
            "datatype": attr.datatype,
            "required": attr.required,
            "datatype_description": service.text(attr.datatype_description, lang) if attr.datatype_description
            else None,
            "order": order,
            "description": service.text(attr.description, lang),
        }
        if attr.choices:
            item["values"] = [{"key": c.key, "name": service.text(c.name, lang)} for c in attr.choices]
        attributes.append(item)
    return {"service_code": topic.code, "attributes": attributes}


def media_url(photo_id: str | None) -> str | None:
    """The public URL of one of our "after" photos (its large derivative)."""
    return url_for("open311.media", public_id=photo_id, _external=True) if photo_id else None


def request_dict(appeal: Appeal, lang: str, photo_id: str | None = None) -> dict:
    """One service request, public fields only: nothing about the citizen.

    ``media_url`` is our "after" photo once the work is resolved, else the client's own photo.
    """
    point = geosql.lonlat(appeal.location)
    return {
        "service_request_id": appeal.reg_no,
        "status": service.open_or_closed(appeal.status),
        "status_notes": service.status_note(appeal.status, lang),
        "service_name": appeal.topic.name(lang),
        "service_code": appeal.topic_code,
        "description": service.public_description(appeal),
        "agency_responsible": appeal.unit.name(lang) if appeal.unit is not None else None,
        "service_notice": None,
        "requested_datetime": service.w3c(appeal.created_at),
        "updated_datetime": service.w3c(appeal.updated_at),
        "expected_datetime": service.w3c(appeal.due_at),
        "address": appeal.address,
        "address_id": None,
        "zipcode": None,
        "lat": round(point[1], 6) if point else None,
        "long": round(point[0], 6) if point else None,
        "media_url": media_url(photo_id) or appeal.media_url,
    }


def request_list(appeals: list[Appeal], lang: str) -> list[dict]:
    """Service requests, with their "after" photos looked up in one query."""
    photos = service.after_photos(appeals)
    return [request_dict(a, lang, photos.get(a.id)) for a in appeals]


def update_dict(update: service.Update) -> dict:
    """One request_update of the servicerequestupdates extension."""
    event = update.event
    return {
        "update_id": str(event.id),
        "service_request_id": update.appeal.reg_no,
        "status": update.status,
        "updated_datetime": service.w3c(event.created_at),
        "description": update.description,
        "media_url": media_url(update.photo_id) or update.media_url,
        "external_status_code": event.to_status or (event.data or {}).get("status"),
    }


# --- views --------------------------------------------------------------------------------------------------------


@bp.get("/discovery.<fmt>")
def discovery(fmt: str):
    """Service discovery: where the GeoReport v2 endpoint is and which formats it speaks."""
    fmt, lang = _format(fmt), _lang()
    return render("discovery", {
        "changeset": CHANGESET,
        "contact": service.text(DISCOVERY_TEXT["contact"], lang),
        "key_service": service.text(DISCOVERY_TEXT["key_service"], lang),
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": request.url_root.rstrip("/") + bp.url_prefix,
            "changeset": CHANGESET,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }, fmt)


@bp.get("/services.<fmt>")
def list_services(fmt: str):
    """The service list: our topics."""
    fmt, lang = _format(fmt), _lang()
    return render("services", [service_dict(t, lang) for t in service.list_services()], fmt)


@bp.get("/services/<code>.<fmt>")
def service_definition(code: str, fmt: str):
    """A service definition: the attributes a request of this topic may carry."""
    fmt, lang = _format(fmt), _lang()
    return render("service_definition", definition_dict(service.get_service(code), lang), fmt)


@bp.post("/requests.<fmt>")
def create_request(fmt: str):
    """Create a service request (api_key required); a resend returns the first request."""
    fmt, lang, now = _format(fmt), _lang(), utcnow()
    result = service.create_request(request.values, _api_key(now), lang, now)
    appeal = result.appeal
    commit(result.events)
    return render("service_requests", [{
        "service_request_id": appeal.reg_no,
        "service_notice": service.service_notice(appeal, lang),
        "account_id": result.account_id,
    }], fmt, 201 if result.created else 200)


@bp.get("/requests.<fmt>")
def list_requests(fmt: str):
    """Requests by id, or by service code, status and date window (90 days, 1,000 at most)."""
    fmt, lang = _format(fmt), _lang()
    appeals = service.find_requests(request.args, utcnow())
    return render("service_requests", request_list(appeals, lang), fmt)


@bp.get("/requests/<rid>.<fmt>")
def get_request(rid: str, fmt: str):
    """One request by its service_request_id (the registration number)."""
    fmt, lang = _format(fmt), _lang()
    return render("service_requests", request_list([service.get_request(rid)], lang), fmt)


@bp.get("/tokens/<token>.<fmt>")
def get_token(token: str, fmt: str):
    """The request id for a token: ours are realtime, so a token is the request id itself."""
    fmt = _format(fmt)
    appeal = service.get_request(token)
    return render("service_requests", [{"service_request_id": appeal.reg_no, "token": token}], fmt)


@bp.get("/media/<public_id>.jpg")
def media(public_id: str):
    """The "after" photo of a resolved Open311 request: a re-encoded derivative, never the original."""
    response = send_file(service.after_photo_file(public_id), mimetype="image/jpeg", max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.get("/servicerequestupdates.<fmt>")
def list_updates(fmt: str):
    """Updates of requests since start_date (mySociety extension): status changes, answers, comments."""
    fmt, lang = _format(fmt), _lang()
    updates = service.list_updates(request.args, lang, utcnow())
    return render("service_request_updates", [update_dict(u) for u in updates], fmt)


@bp.post("/servicerequestupdates.<fmt>")
def post_update(fmt: str):
    """A citizen's comment or status from the client that filed the request (mySociety extension)."""
    fmt, now = _format(fmt), utcnow()
    result = service.post_update(request.values, _api_key(now), now)
    commit(result.events)
    return render("service_request_updates", [{"update_id": str(result.event.id)}], fmt,
                  201 if result.created else 200)


@bp.route("/", defaults={"anything": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(anything: str):
    """Anything else under /open311/v2/: the spec's 404 (or 405 for a known resource and a wrong method)."""
    ext = anything.rsplit(".", 1)[-1] if "." in anything else ""
    if ext in FORMATS:
        g.open311_format = ext
    return render_error(404, f"no such resource: /open311/v2/{anything} ({request.method})")


# --- errors -------------------------------------------------------------------------------------------------------


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error):
    db.session.rollback()
    response = render_error(exc.status, exc.description)
    if isinstance(exc, Open311RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    db.session.rollback()
    mapped = service.as_open311_error(exc)
    return render_error(mapped.status, mapped.description)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    db.session.rollback()
    return render_error(exc.code or 400, exc.description or exc.name)


@bp.errorhandler(OperationalError)
@bp.errorhandler(DBAPIError)
def _database_error(exc):
    log.warning("database error: %s", exc)
    db.session.rollback()
    return render_error(503, "the service is temporarily unavailable; try again")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unhandled error in open311")
    db.session.rollback()
    return render_error(500, "something went wrong on our side; the request was not saved")
