"""JSON errors for the whole app, in the requester's language.

Shape: ``{"error": {"code": ..., "message": ..., "fields": [{"field", "code", "message"}]}}``.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from server.api.messages import message
from server.extensions import db
from server.services.errors import ServiceError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP-level error raised by views and request parsing."""

    def __init__(self, status: int, code: str, fields: list[dict] | None = None, **params):
        super().__init__(code)
        self.status = status
        self.code = code
        self.fields = fields or []
        self.params = params


def error_response(http_status: int, error_code: str, fields: list[dict] | None = None, *,
                   detail: dict | None = None, **params):
    """Build the JSON error response (``params`` fill the message's placeholders).

    ``detail`` adds machine-readable facts a client acts on (e.g. the appeal's status now).
    """
    body = {"error": {"code": error_code, "message": message(error_code, **params), "fields": fields or []}}
    if detail is not None:
        body["error"]["detail"] = detail
    return jsonify(body), http_status


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict]:
    """Translate pydantic errors into ``{field, code, message}`` items."""
    out = []
    for err in exc.errors(include_url=False):
        ctx = dict(err.get("ctx") or {})
        loc = [str(p) for p in err.get("loc", ())]
        # Model-level checks name their field in ctx: report "citizen.phone", not just "citizen".
        field = ".".join([*loc, ctx["field"]] if ctx.get("field") else loc)
        if prefix and field:
            field = f"{prefix}.{field}"
        code = err["type"]
        if code == "literal_error" and "expected" in ctx:
            ctx["expected"] = ctx["expected"].replace("'", "")
        out.append({"field": field, "code": code, "message": f"{field}: {message(code, **ctx)}" if field
                    else message(code, **ctx)})
    return out


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/readyz")) or request.accept_mimetypes.best == (
        "application/json"
    )


def register_error_handlers(app: Flask) -> None:
    """Map every error the app can raise to a JSON (API) or plain (pages) response."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.fields, **exc.params)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        db.session.rollback()
        fields = []
        if exc.field:
            fields.append({"field": exc.field, "code": exc.code, "message": message(exc.code, **exc.params)})
        params = dict(exc.params)
        detail = params.pop("detail", None)
        return error_response(exc.status, exc.code, fields, detail=detail, **params)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return error_response(400, "validation_failed", field_errors(exc))

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_response(400, "csrf_failed")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_down(exc):
        # A lost database is a 503 the client can retry, not a 500; nothing was committed.
        log.warning("database error: %s", exc)
        db.session.rollback()
        if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
            return error_response(503, "service_unavailable")
        return error_response(500, "server_error")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
                 429: "rate_limited", 503: "service_unavailable"}
        code = codes.get(exc.code or 500, "bad_request")
        if not _wants_json() and exc.code in (404, 405):
            return exc
        # The limit of this request (an upload route raises it), not only the app-wide default.
        params = {"limit": request.max_content_length} if code == "body_too_large" else {}
        return error_response(exc.code or 500, code, **params)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        db.session.rollback()
        return error_response(500, "server_error")
