"""JSON errors for the whole app, in the requester's language.

Shape: ``{"error": {"code": ..., "message": ..., "fields": [{"field", "code", "message"}]}}``.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, make_response, render_template, request
from flask_babel import force_locale
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from server.api.messages import message
from server.extensions import db
from server.i18n import LANG_COOKIE, choose_locale
from server.services.errors import ServiceError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # seconds a client should wait before retrying after a 503 (the database is away)


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


def _locale_without_database() -> str:
    """The request's language by the usual rule, using the user's setting only if it is already loaded."""
    user = g.get("_login_user")
    state = sa_inspect(user, raiseerr=False) if user is not None else None
    user_lang = state.dict.get("language") if state is not None else None
    accept = [lang.replace("_", "-") for lang, _q in request.accept_languages]
    return choose_locale(request.args.get("lang"), user_lang, accept, "ru", request.cookies.get(LANG_COOKIE))


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
    @app.errorhandler(PoolTimeout)
    def _database_down(exc):
        # A lost database is a 503 the client can retry (on the same key), not a 500. So is one that
        # answers too late: a statement or lock timeout (OperationalError), or no pooled connection
        # free within pool_timeout because the others hang on it (PoolTimeout).
        log.warning("database error: %s", exc)
        # Nothing from here on may touch the database: the language is chosen without loading the user
        # (a rollback expires it, and its loader would fail again), and the rest of the request
        # (after_request hooks) sees an anonymous caller.
        locale = _locale_without_database()
        g._login_user = current_app.login_manager.anonymous_user()
        db.session.rollback()
        with force_locale(locale):
            if isinstance(exc, OperationalError | PoolTimeout) or getattr(exc, "connection_invalidated", False):
                if _wants_json():
                    response, status = error_response(503, "service_unavailable")
                else:  # a person at a page: a page in their language, not a JSON body
                    response = make_response(render_template("unavailable.html",
                                                             message=message("service_unavailable")))
                    status = 503
                response.headers["Retry-After"] = str(RETRY_AFTER_S)
                return response, status
            return error_response(500, "server_error")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        original = getattr(exc, "original_exception", None)
        if isinstance(original, DBAPIError | PoolTimeout):
            # Raised where no other handler looks (an after_request hook's commit): Flask wraps it in a 500.
            return _database_down(original)
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
                 429: "rate_limited", 500: "server_error", 503: "service_unavailable"}
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
