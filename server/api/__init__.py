"""The JSON API at /api/v1: one module per resource, thin views over services."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from server.api import (  # noqa: E402,F401  (views register on bp)
    admin_keys,
    analytics,
    appeals,
    auth,
    dispatch,
    mapdata,
    meta,
    photos,
    push,
    qc,
    reply_templates,
    sectors,
    sla,
    topics,
)
