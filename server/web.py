"""Pages and probes: health checks, the start page, staff login/logout and the API docs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, send_from_directory, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import text

from server.api.messages import message
from server.extensions import db
from server.models.types import utcnow
from server.ratelimit import TooManyAttempts, check_login, login_result
from server.services import push
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
        username, now = request.form.get("username", "").strip(), utcnow()
        try:
            check_login(username, now.timestamp())
        except TooManyAttempts as exc:
            page = render_template("login.html", error=message(exc.code, minutes=exc.minutes))
            return page, 429, {"Retry-After": str(exc.retry_after)}
        staff = staff_service.authenticate(username, request.form.get("password", ""), now=now, via="web")
        login_result(username, staff is not None, now.timestamp())
        if staff is None:
            db.session.commit()  # the failed attempt's audit entry
            error = _("Wrong username or password.")
        else:
            session.clear()  # rotate: nothing from before login survives it (the CSRF token neither)
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
        push.forget_login(token)  # this browser's push subscription goes with its login
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


@bp.get("/analytics/")
def analytics_page():
    """The analysts' dashboard (static page in pwa/analytics/; the figures come from the API)."""
    return send_from_directory(PWA_DIR / "analytics", "index.html", max_age=0)


@bp.get("/analytics/<path:filename>")
def analytics_asset(filename: str):
    """Static files of the analytics dashboard (no data in them)."""
    return send_from_directory(PWA_DIR / "analytics", filename, max_age=300)


@bp.get("/inspector/")
def inspector_page():
    """Quality control: the inspector's queue and the call-backs (static page in pwa/inspector/)."""
    return send_from_directory(PWA_DIR / "inspector", "index.html", max_age=0)


@bp.get("/inspector/<path:filename>")
def inspector_asset(filename: str):
    """Static files of the quality-control page (no data in them)."""
    return send_from_directory(PWA_DIR / "inspector", filename, max_age=300)


@bp.get("/dispatch/<path:filename>")
def dispatch_asset(filename: str):
    """Static files of the dispatcher's map (no data: everything personal comes from the API)."""
    return send_from_directory(PWA_DIR / "dispatch", filename, max_age=300)


@bp.get("/operator/<path:filename>")
def operator_asset(filename: str):
    """Static files of the operator console."""
    return send_from_directory(PWA_DIR / "operator", filename, max_age=300)


FIELD_DIR = PWA_DIR / "field"
_BUILD_MARK = 'const BUILD = "dev";'


def field_precache() -> list[str]:
    """The URLs the field app's service worker precaches (pwa/field/precache.json)."""
    return json.loads((FIELD_DIR / "precache.json").read_text(encoding="utf-8"))


def field_url_path(url: str) -> Path | None:
    """The file behind a precached URL (/field/..., /static/..., /vendor/...), or None."""
    roots = {"/field/": FIELD_DIR, "/static/": PWA_DIR / "shared", "/vendor/": VENDOR_DIR}
    if url == "/field/":
        return FIELD_DIR / "index.html"
    for prefix, root in roots.items():
        if url.startswith(prefix):
            return root / url[len(prefix):]
    return None


def field_build_id() -> str:
    """A fingerprint of every precached file: any change makes a new sw.js, hence a new cache."""
    digest = hashlib.sha256()
    for url in field_precache():
        path = field_url_path(url)
        digest.update(url.encode())
        digest.update(path.read_bytes() if path and path.is_file() else b"missing")
    return digest.hexdigest()[:16]


@bp.get("/field/")
def field_page():
    """The field staff app shell (public: it holds no data; the data needs a login)."""
    return send_from_directory(FIELD_DIR, "index.html", max_age=0)


@bp.get("/field/sw.js")
def field_sw():
    """The field app's service worker, stamped with the build fingerprint so any change updates it."""
    source = (FIELD_DIR / "sw.js").read_text(encoding="utf-8")
    body = source.replace(_BUILD_MARK, f'const BUILD = "{field_build_id()}";', 1)
    resp = current_app.response_class(body, mimetype="text/javascript")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Service-Worker-Allowed"] = "/field/"
    return resp


@bp.get("/field/manifest.webmanifest")
def field_manifest():
    """The field app's web app manifest (installable PWA)."""
    resp = send_from_directory(FIELD_DIR, "manifest.webmanifest", max_age=0, mimetype="application/manifest+json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/field/<path:filename>")
def field_asset(filename: str):
    """Static files of the field app (revalidated: the service worker keeps the offline copy)."""
    resp = send_from_directory(FIELD_DIR, filename, max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/vendor/<path:filename>")
def vendor(filename: str):
    """Vendored front-end libraries (see pwa/vendor/README.md)."""
    return send_from_directory(VENDOR_DIR, filename, max_age=3600)


def current_role() -> str | None:
    """The logged-in user's role, for templates."""
    return current_user.role if current_user.is_authenticated else None
