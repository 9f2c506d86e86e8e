"""Authentication: bearer tokens for API clients, the field app's JSON login, and who am I."""

from __future__ import annotations

from flask import current_app, jsonify, request, session
from flask_login import login_user, logout_user
from flask_wtf.csrf import generate_csrf

from server.api import bp
from server.api.common import commit, viewer
from server.api.errors import ApiError
from server.api.outputs import MeOut, SessionOut, TokenOut
from server.api.spec import endpoint
from server.models.types import utcnow
from server.ratelimit import check_login, login_result
from server.schemas import TokenIn
from server.services import push
from server.services import staff as staff_service
from server.services.staff import SESSION_TOKEN_KEY


@bp.post("/auth/token")
@endpoint(body=TokenIn, responses={200: TokenOut, 401: None, 429: None}, tags=["auth"])
def create_token(body: TokenIn):
    """Exchange a username and password for a bearer token."""
    now = utcnow()
    check_login(body.username, now.timestamp())  # 429 past JAUAP_LOGIN_LIMITS (server.hardening renders it)
    staff = staff_service.authenticate(body.username, body.password, now=now, via="token")
    login_result(body.username, staff is not None, now.timestamp())
    if staff is None:
        commit()  # the failed attempt's audit entry
        raise ApiError(401, "bad_credentials")
    token, row = staff_service.issue_token(staff, utcnow(), current_app.config["JAUAP_TOKEN_TTL_HOURS"])
    commit()
    return jsonify(TokenOut(token=token, expires_at=row.expires_at, role=staff.role).model_dump(mode="json"))


@bp.delete("/auth/token")
@endpoint(responses={204: None}, tags=["auth"])
def revoke_token():
    """Revoke the bearer token this request carries."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        push.forget_login(header[7:].strip())  # this login's devices get no more pushes
        staff_service.revoke_token(header[7:].strip(), utcnow())
        commit()
    return "", 204


@bp.post("/auth/session")
@endpoint(body=TokenIn, responses={200: SessionOut, 401: None, 429: None}, tags=["auth"])
def create_session(body: TokenIn):
    """Log a browser in (the field app): a session cookie that lasts one shift of the staff member."""
    now = utcnow()
    check_login(body.username, now.timestamp())
    staff = staff_service.authenticate(body.username, body.password, now=now, via="session")
    login_result(body.username, staff is not None, now.timestamp())
    if staff is None:
        commit()  # the failed attempt's audit entry
        raise ApiError(401, "bad_credentials")
    hours = staff_service.shift_hours(staff, current_app.config["JAUAP_TOKEN_TTL_HOURS"])
    token, row = staff_service.issue_token(staff, utcnow(), hours)
    commit()
    session.clear()  # rotate: nothing from before login survives it
    session[SESSION_TOKEN_KEY] = token
    # A persistent cookie: a phone closing the app mid-shift keeps the login; the server token ends it.
    session.permanent = True
    login_user(staff)
    return jsonify(SessionOut(**_me(staff), expires_at=row.expires_at).model_dump(mode="json"))


@bp.delete("/auth/session")
@endpoint(responses={204: None}, tags=["auth"])
def end_session():
    """Log this browser out, here and on the server."""
    token = session.get(SESSION_TOKEN_KEY)
    if token:
        push.forget_login(token)  # this browser's push subscription goes with its login
        staff_service.revoke_token(token, utcnow())
        commit()
    logout_user()
    session.clear()
    return "", 204


def _me(staff) -> dict:
    return {"id": staff.id, "username": staff.username, "full_name": staff.full_name, "role": staff.role,
            "unit": staff.unit.code if staff.unit else None, "language": staff.language, "on_duty": staff.on_duty}


@bp.get("/auth/me")
@endpoint(responses={200: MeOut}, tags=["auth"])
def me():
    """The logged-in staff member."""
    staff = viewer()
    return jsonify(MeOut(**_me(staff)).model_dump())


@bp.get("/auth/csrf")
@endpoint(tags=["auth"])
def csrf_token():
    """The CSRF token a browser page sends as ``X-CSRFToken`` on writes with the session cookie."""
    return jsonify({"csrf_token": generate_csrf()})


@bp.get("/ui-config")
@endpoint(tags=["meta"])
def ui_config():
    """Settings the browser screens need: the map's tile URL (blank basemap when unset) and languages."""
    return jsonify({"tile_url": current_app.config.get("JAUAP_TILE_URL"), "languages": ["kk", "ru", "en"],
                    "at_risk_share": current_app.config.get("JAUAP_AT_RISK_SHARE", 0.75)})
