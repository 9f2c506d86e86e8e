"""The OpenAPI document."""

from __future__ import annotations

from flask import current_app, jsonify

from server.api import bp
from server.api.spec import openapi_document


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, generated from the schemas that validate requests."""
    doc = current_app.extensions.get("jauap_openapi")
    if doc is None:
        doc = openapi_document(current_app, "Jauap API", "1")
        current_app.extensions["jauap_openapi"] = doc
    return jsonify(doc)
