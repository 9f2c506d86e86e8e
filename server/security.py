"""Who may call what: one policy table for every route, enforced before any view runs.

Default deny: an endpoint missing from ``POLICY`` answers 403 (and a test fails).
Object-level rules (which appeals a unit may see) live in services.
Browsers authenticate with the session cookie (writes need the CSRF token);
API clients send ``Authorization: Bearer <token>`` (no CSRF, no cookie).
"""

from __future__ import annotations

from flask import Flask, redirect, request, session, url_for
from flask_login import current_user

from server.api.errors import error_response
from server.extensions import csrf, login_manager
from server.models import CENTRE_ROLES, ROLES
from server.models.types import utcnow
from server.services import staff as staff_service

PUBLIC = "public"
AUTHENTICATED = "authenticated"

ALL_STAFF = frozenset(ROLES)
APPEAL_READERS = frozenset({*CENTRE_ROLES, "admin", "unit_head", "field_staff"})

# endpoint -> PUBLIC | AUTHENTICATED | set of roles
POLICY: dict[str, object] = {
    "static": PUBLIC,
    "web.healthz": PUBLIC,
    "web.readyz": PUBLIC,
    "web.index": PUBLIC,
    "web.login": PUBLIC,
    "web.logout": AUTHENTICATED,
    "web.docs": PUBLIC,
    "web.vendor": PUBLIC,
    "api.openapi": PUBLIC,
    "api.create_token": PUBLIC,
    "api.revoke_token": AUTHENTICATED,
    "api.me": AUTHENTICATED,
    "api.list_topics": PUBLIC,
    "api.list_sectors": PUBLIC,
    "api.lookup_sector": PUBLIC,
    "api.create_appeal": frozenset({"operator", "dispatcher"}),
    "api.list_appeals": APPEAL_READERS,
    "api.get_appeal": APPEAL_READERS,
    # The state machine decides which role may take which action; admins and analysts take none.
    "api.appeal_transition": APPEAL_READERS - {"admin", "analyst", "methodologist", "pr_manager"},
    "api.list_events": APPEAL_READERS,
    "api.reassign_appeal": frozenset({"dispatcher", "unit_head"}),
    "api.set_my_duty": frozenset({"field_staff", "unit_head", "operator", "dispatcher", "inspector"}),
    "api.report_my_position": frozenset({"field_staff", "unit_head"}),
    "api.staff_positions": frozenset({"dispatcher", "operator", "inspector", "unit_head"}),
    "api.list_staff": frozenset({"dispatcher", "unit_head", "admin"}),
    "api.list_shifts": frozenset({"dispatcher", "unit_head", "admin", "operator"}),
    "api.update_staff": frozenset({"admin"}),
    "api.map_appeals": APPEAL_READERS,
    "api.map_counters": APPEAL_READERS,
    "web.dispatch_page": frozenset({"dispatcher", "unit_head", "operator", "inspector", "admin"}),
    "web.operator_page": frozenset({"operator", "dispatcher"}),
    "web.dispatch_asset": PUBLIC,
    "web.operator_asset": PUBLIC,
    "api.csrf_token": AUTHENTICATED,
    "api.ui_config": PUBLIC,
    "api.similar_appeals": frozenset({"operator", "dispatcher"}),
}

# Unsafe methods that need no CSRF token: they authenticate by the credentials in the body.
CSRF_EXEMPT = frozenset({"api.create_token"})


def policy_for(endpoint: str | None):
    """The policy entry for an endpoint (None when missing: deny)."""
    return POLICY.get(endpoint or "")


def _deny(status: int, code: str):
    if request.path.startswith("/api/") or status != 401:
        return error_response(status, code)
    return redirect(url_for("web.login", next=request.full_path))


def enforce_policy():
    """before_request: authenticate, check CSRF on cookie sessions, apply the policy table."""
    if request.endpoint is None:  # 404 / 405: let the router answer
        return None
    rule = policy_for(request.endpoint)
    current_user._get_current_object()
    # A bearer header cannot be forged cross-site without a CORS preflight, so it needs no CSRF token.
    bearer = request.headers.get("Authorization", "").lower().startswith("bearer ")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not bearer and request.endpoint not in CSRF_EXEMPT:
        csrf.protect()
    if rule is None:
        return _deny(403, "forbidden")
    if rule == PUBLIC:
        return None
    if not current_user.is_authenticated:
        return _deny(401, "unauthorized")
    if rule == AUTHENTICATED or current_user.role in rule:  # type: ignore[operator]
        return None
    return _deny(403, "forbidden")


def init_security(app: Flask) -> None:
    """Wire Flask-Login (session + bearer) and the policy check into ``app``."""
    login_manager.init_app(app)
    csrf.init_app(app)
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def _load_user(session_id: str):
        return staff_service.load_session_user(session_id, session.get(staff_service.SESSION_TOKEN_KEY), utcnow())

    @login_manager.request_loader
    def _load_from_header(req):
        header = req.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        return staff_service.staff_for_token(header[7:].strip(), utcnow())

    app.before_request(enforce_policy)
