"""Who may call what: one policy table for every route, enforced before any view runs.

Default deny: an endpoint missing from ``POLICY`` answers 403 (and a test fails).
Object-level rules (which appeals a unit may see) live in services.
Browsers authenticate with the session cookie (writes need the CSRF token);
API clients send ``Authorization: Bearer <token>`` (no CSRF, no cookie).
"""

from __future__ import annotations

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import current_user

from server.api.errors import error_response
from server.extensions import csrf, login_manager
from server.models import CENTRE_ROLES, ROLES
from server.models.types import utcnow
from server.services import audit
from server.services import staff as staff_service

PUBLIC = "public"
_BEARER_FLAG = "jauap_bearer_auth"  # set on flask.g when this request's user came from its bearer token
AUTHENTICATED = "authenticated"

ALL_STAFF = frozenset(ROLES)
APPEAL_READERS = frozenset({*CENTRE_ROLES, "admin", "unit_head", "field_staff"})
PUSH_ROLES = frozenset({*CENTRE_ROLES, "unit_head", "field_staff"})
# Kept in step with server.services.analytics.ANALYTICS_ROLES (a test checks).
ANALYTICS_ROLES = frozenset({"analyst", "pr_manager", "methodologist", "qc_analyst", "inspector", "admin"})

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
    # The field app: its shell is public (no data in it), the JSON login starts a browser session.
    "web.field_page": PUBLIC,
    "web.field_sw": PUBLIC,
    "web.field_manifest": PUBLIC,
    "web.field_asset": PUBLIC,
    "api.create_session": PUBLIC,
    "api.end_session": AUTHENTICATED,
    # Web Push: people who get assignments or follow work in the field; not admins.
    "api.push_key": PUSH_ROLES,
    "api.subscribe_push": PUSH_ROLES,
    "api.unsubscribe_push": PUSH_ROLES,
    # Photo evidence: only field staff upload (the service also requires the assignee, at work);
    # whoever may see the appeal may see its photos (the original only for some: services.evidence).
    "api.upload_photo": frozenset({"field_staff"}),
    "api.list_photos": APPEAL_READERS,
    "api.get_photo": APPEAL_READERS,
    # The citizen's side (server/citizen.py): no login; the tracking token is the key to one appeal,
    # writes carry the CSRF token of the anonymous session, reports are rate-limited per address.
    "citizen.report_page": PUBLIC,
    "citizen.tracking_page": PUBLIC,
    "citizen.asset": PUBLIC,
    "citizen.report_form": PUBLIC,
    "citizen.submit_report": PUBLIC,
    "citizen.tracking": PUBLIC,
    "citizen.give_feedback": PUBLIC,
    "citizen.tracking_photo": PUBLIC,
    # Open311 GeoReport v2 (server/channels/open311.py): reads are public by the spec; the writes
    # check their own api_key (services.apikeys), so the policy lets them through to do it.
    "open311.discovery": PUBLIC,
    "open311.list_services": PUBLIC,
    "open311.service_definition": PUBLIC,
    "open311.create_request": PUBLIC,
    "open311.list_requests": PUBLIC,
    "open311.get_request": PUBLIC,
    "open311.get_token": PUBLIC,
    "open311.list_updates": PUBLIC,
    "open311.post_update": PUBLIC,
    "open311.unknown": PUBLIC,
    "open311.media": PUBLIC,  # only "after" photos of resolved Open311 requests, by their random id
    # Open311 API keys: admins only.
    "api.create_api_key": frozenset({"admin"}),
    "api.list_api_keys": frozenset({"admin"}),
    "api.revoke_api_key": frozenset({"admin"}),
    # Chat channel webhooks: no login; each authenticates the provider itself (Telegram's secret-token
    # header, Meta's HMAC signature of the raw body) and answers 403 before reading anything else.
    "channels.telegram_webhook": PUBLIC,
    "channels.meta_verify": PUBLIC,
    "channels.meta_webhook": PUBLIC,
    # The citizens' reply templates: the methodologist writes them (admins may too).
    "methodology.templates_page": frozenset({"methodologist", "admin"}),
    "methodology.asset": PUBLIC,
    "api.list_reply_templates": frozenset({"methodologist", "admin"}),
    "api.save_reply_template": frozenset({"methodologist", "admin"}),
    "api.reset_reply_template": frozenset({"methodologist", "admin"}),
    # SLA regulation: admins edit the deadline policies and the calendar; the clock's actions follow
    # server.services.lifecycle.CLOCK_ACTIONS (the service checks the role again).
    "api.list_sla_policies": frozenset({"admin"}),
    "api.save_sla_policy": frozenset({"admin"}),
    "api.delete_sla_policy": frozenset({"admin"}),
    "api.get_calendar": frozenset({"admin"}),
    "api.set_calendar_day": frozenset({"admin"}),
    "api.delete_calendar_day": frozenset({"admin"}),
    "api.extend_appeal": frozenset({"unit_head", "inspector"}),
    "api.pause_appeal": frozenset({"operator", "dispatcher", "inspector", "unit_head"}),
    "api.resume_appeal": frozenset({"operator", "dispatcher", "inspector", "unit_head"}),
    # The analytics dashboard: the analysis sector, the PR manager, quality control and admins. It holds no
    # personal data; analysts' and the PR manager's places are rounded to ~100 m (services.analytics).
    "web.analytics_page": ANALYTICS_ROLES,
    "web.analytics_asset": PUBLIC,
    "api.analytics_dashboard": ANALYTICS_ROLES,
    "api.analytics_export": ANALYTICS_ROLES,
    # Quality control (server/api/qc.py): inspectors check finished work, the QC analyst calls citizens
    # back (and sees their phone, audited); both, and admins, read the units' quality figures.
    "web.inspector_page": frozenset({"inspector", "qc_analyst"}),
    "web.inspector_asset": PUBLIC,
    "api.qc_queue": frozenset({"inspector"}),
    "api.qc_approve": frozenset({"inspector"}),
    "api.qc_return": frozenset({"inspector"}),
    "api.qc_callbacks": frozenset({"qc_analyst"}),
    "api.qc_record_callback": frozenset({"qc_analyst"}),
    "api.qc_units": frozenset({"inspector", "qc_analyst", "admin"}),
}

# Unsafe methods that need no CSRF token: they authenticate by the credentials in the body.
# The JSON login needs none either: only JSON bodies are read, which a cross-site form cannot send.
# Open311 writes are form posts from other servers, authenticated by the api_key in the form.
CSRF_EXEMPT = frozenset({"api.create_token", "api.create_session",
                         "open311.create_request", "open311.post_update", "open311.unknown",
                         # provider webhooks, authenticated by their secret header or body signature
                         "channels.telegram_webhook", "channels.meta_webhook"})


def policy_for(endpoint: str | None):
    """The policy entry for an endpoint (None when missing: deny)."""
    return POLICY.get(endpoint or "")


def _deny(status: int, code: str):
    if request.path.startswith("/api/") or status != 401:
        return error_response(status, code)
    return redirect(url_for("web.login", next=request.full_path))


def _raise_body_limit(rule) -> None:
    """Let an upload endpoint read a larger body, but only for a caller the policy admits.

    Anyone else keeps the app-wide limit, so a stranger cannot make the server parse
    megabytes (the CSRF check below already reads form bodies).
    """
    limit = getattr(current_app.view_functions.get(request.endpoint), "max_content_length", None)
    if limit and rule == PUBLIC:
        # A public upload (the citizen report: 3 photos compressed on the phone) declares a modest limit.
        request.max_content_length = limit
        return
    if not limit or not current_user.is_authenticated:
        return
    if rule == AUTHENTICATED or (isinstance(rule, frozenset) and current_user.role in rule):
        request.max_content_length = limit


def enforce_policy():
    """before_request: authenticate, check CSRF on cookie sessions, apply the policy table."""
    if request.endpoint is None:  # 404 / 405: let the router answer
        return None
    rule = policy_for(request.endpoint)
    current_user._get_current_object()
    _raise_body_limit(rule)
    # A bearer token cannot be sent cross-site without a CORS preflight, so a caller it authenticated needs no
    # CSRF token. Only one it authenticated: a cookie session with any "Bearer" header beside it is still a
    # cookie session (Flask-Login prefers the session), and keeps the CSRF check.
    bearer = bool(g.get(_BEARER_FLAG))
    if rule is None:
        return _deny(403, "forbidden")
    # No login at all where one is needed: 401 before the CSRF check (there is no session a token could
    # protect, and a client must learn to log in, not to fetch a CSRF token).
    if rule != PUBLIC and not current_user.is_authenticated:
        return _deny(401, "unauthorized")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not bearer and request.endpoint not in CSRF_EXEMPT:
        csrf.protect()
    if rule == PUBLIC:
        return None
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
        staff = staff_service.staff_for_token(header[7:].strip(), utcnow())
        if staff is not None:
            g.setdefault(_BEARER_FLAG, True)
        return staff

    app.before_request(enforce_policy)
    audit.init_audit(app)  # contact views noted by a request are written after it
