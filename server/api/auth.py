"""Authentication for API clients: bearer tokens, and who am I."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_wtf.csrf import generate_csrf

from server.api import bp
from server.api.common import commit, viewer
from server.api.errors import ApiError
from server.api.outputs import MeOut, TokenOut
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import TokenIn
from server.services import staff as staff_service


@bp.post("/auth/token")
@endpoint(body=TokenIn, responses={200: TokenOut}, tags=["auth"])
def create_token(body: TokenIn):
    """Exchange a username and password for a bearer token."""
    staff = staff_service.authenticate(body.username, body.password)
    if staff is None:
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
        staff_service.revoke_token(header[7:].strip(), utcnow())
        commit()
    return "", 204


@bp.get("/auth/me")
@endpoint(responses={200: MeOut}, tags=["auth"])
def me():
    """The logged-in staff member."""
    staff = viewer()
    return jsonify(MeOut(id=staff.id, username=staff.username, full_name=staff.full_name, role=staff.role,
                         unit=staff.unit.code if staff.unit else None, language=staff.language).model_dump())


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
