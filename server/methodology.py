"""The methodologist's page for the citizens' reply templates (static page in pwa/templates/).

The page holds no data: it reads and writes through ``/api/v1/reply-templates``, which the
policy table opens to methodologists and admins only.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

bp = Blueprint("methodology", __name__)
PAGE_DIR = Path(__file__).resolve().parent.parent / "pwa" / "templates"


@bp.get("/templates/")
def templates_page():
    """The reply template editor (methodologists and admins)."""
    return send_from_directory(PAGE_DIR, "index.html", max_age=0)


@bp.get("/templates/<path:filename>")
def asset(filename: str):
    """Static files of the template editor (no data)."""
    return send_from_directory(PAGE_DIR, filename, max_age=300)
