"""Data for the dispatcher's live map."""

from __future__ import annotations

from flask import jsonify

from server.api import bp
from server.api.common import viewer
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import MapQuery
from server.services import mapview


@bp.get("/map/appeals")
@endpoint(query=MapQuery, tags=["live"])
def map_appeals(query: MapQuery):
    """Open appeals in a box as compact rows (``fields`` names the columns), with the last event id and the
    event ids the snapshot saw in the look-back window (``reflected_event_ids``)."""
    return jsonify(mapview.open_appeals(viewer(), utcnow(), **query.model_dump()))


@bp.get("/map/counters")
@endpoint(tags=["live"])
def map_counters():
    """Per-sector counters: open, unassigned, at risk, breached."""
    return jsonify(mapview.sector_counters(viewer(), utcnow()))
