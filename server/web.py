"""Pages and probes: health checks, the start page, staff login/logout and the API docs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, send_from_directory, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import text

from server.extensions import db
from server.models.types import utcnow
from server.services import staff as staff_service
from server.services.staff import SESSION_TOKEN_KEY

bp = Blueprint("web", __name__)
VENDOR_DIR = Path(__file__).resolve().parent.parent / "pwa" / "vendor"


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Readiness: the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}


@bp.get("/")
def index():
    """The start page: who you are and where to go."""
    return render_template("index.html")


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect would let phishing pages borrow our login.
    if not target:
        return url_for("web.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Staff log in with a username and password (session cookie)."""
    error = None
    if request.method == "POST":
        staff = staff_service.authenticate(request.form.get("username", "").strip(),
                                           request.form.get("password", ""))
        if staff is None:
            error = _("Wrong username or password.")
        else:
            session.clear()  # rotate: nothing from before login survives it
            # A server-side record of this login, so logout really ends it (and its live connections).
            token, _row = staff_service.issue_token(staff, utcnow(), current_app.config["JAUAP_TOKEN_TTL_HOURS"])
            db.session.commit()
            session[SESSION_TOKEN_KEY] = token
            login_user(staff)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    """End the session, here and on the server (its live connections are cut)."""
    token = session.get(SESSION_TOKEN_KEY)
    if token:
        staff_service.revoke_token(token, utcnow())
        db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("web.index"))


@bp.get("/api/v1/docs")
def docs():
    """The interactive API documentation (Swagger UI, served locally)."""
    return render_template("docs.html")


PWA_DIR = VENDOR_DIR.parent


@bp.get("/dispatch/")
def dispatch_page():
    """The dispatcher's live map (static page in pwa/dispatch/)."""
    return send_from_directory(PWA_DIR / "dispatch", "index.html", max_age=0)


@bp.get("/operator/")
def operator_page():
    """The 109 operator console (static page in pwa/operator/)."""
    return send_from_directory(PWA_DIR / "operator", "index.html", max_age=0)


@bp.get("/dispatch/<path:filename>")
def dispatch_asset(filename: str):
    """Static files of the dispatcher's map (no data: everything personal comes from the API)."""
    return send_from_directory(PWA_DIR / "dispatch", filename, max_age=300)


@bp.get("/operator/<path:filename>")
def operator_asset(filename: str):
    """Static files of the operator console."""
    return send_from_directory(PWA_DIR / "operator", filename, max_age=300)


@bp.get("/vendor/<path:filename>")
def vendor(filename: str):
    """Vendored front-end libraries (see pwa/vendor/README.md)."""
    return send_from_directory(VENDOR_DIR, filename, max_age=3600)


def current_role() -> str | None:
    """The logged-in user's role, for templates."""
    return current_user.role if current_user.is_authenticated else None
