"""Appeals: register, list, read, and take lifecycle steps."""

from __future__ import annotations

from flask import jsonify

from server.api import bp
from server.api.common import CLIENT_UUID_HEADER, IDEMPOTENCY_HEADER, client_uuid, commit, idempotency_key, viewer
from server.api.outputs import AppealCreated, AppealOut, AppealPage, appeal_out, similar_out
from server.api.spec import endpoint, link
from server.models.types import utcnow
from server.schemas import AppealIn, AppealListQuery, SimilarQuery, TransitionIn
from server.services import appeals as appeal_service
from server.services.intake import find_similar_at, register_appeal
from server.services.lifecycle import Actor

# What an appeal's answer leads to (OpenAPI links: the id of the answer fills the next call's path).
APPEAL_LINKS = {
    name: link(endpoint_name, method, appeal_id="$response.body#/id")
    for name, endpoint_name, method in (
        ("GetAppeal", "api.get_appeal", "GET"),
        ("TakeStep", "api.appeal_transition", "POST"),
        ("ListPhotos", "api.list_photos", "GET"),
        ("Reassign", "api.reassign_appeal", "POST"),
        ("Pause", "api.pause_appeal", "POST"),
        ("Resume", "api.resume_appeal", "POST"),
        ("Extend", "api.extend_appeal", "POST"),
    )
}


@bp.post("/appeals")
@endpoint(body=AppealIn, responses={201: AppealCreated, 200: AppealCreated, 429: None}, tags=["appeals"],
          headers=[IDEMPOTENCY_HEADER], links={201: APPEAL_LINKS, 200: APPEAL_LINKS})
def create_appeal(body: AppealIn):
    """Register an appeal: locate, route to a sector, return its registration number."""
    staff = viewer()
    result = register_appeal(body, actor=Actor.of(staff), now=utcnow(), idempotency_key=idempotency_key())
    commit(result.events)
    out = appeal_out(result.appeal, staff, cls=AppealCreated, tracking_token=result.appeal.tracking_token,
                     similar=similar_out(result.similar))
    return jsonify(out), 201 if result.created else 200


@bp.get("/appeals")
@endpoint(query=AppealListQuery, responses={200: AppealPage}, tags=["appeals"])
def list_appeals(query: AppealListQuery):
    """List the appeals you may see, filtered and paged, most recently changed first."""
    staff = viewer()
    filters = query.model_dump(exclude={"page", "per_page"})
    page = appeal_service.list_appeals(staff, page=query.page, per_page=query.per_page, **filters)
    return jsonify({"items": [appeal_out(a, staff) for a in page.items], "total": page.total,
                    "page": page.page, "per_page": page.per_page})


@bp.get("/appeals/similar")
@endpoint(query=SimilarQuery, tags=["appeals"])
def similar_appeals(query: SimilarQuery):
    """Open appeals of a topic near a point (before saving: link instead of duplicating)."""
    found = find_similar_at(query.lon, query.lat, query.topic)
    return jsonify(similar_out(found))


@bp.get("/appeals/<int:appeal_id>")
@endpoint(responses={200: AppealOut}, tags=["appeals"], links={200: APPEAL_LINKS})
def get_appeal(appeal_id: int):
    """Read one appeal with its full history."""
    staff = viewer()
    return jsonify(appeal_out(appeal_service.get_appeal(appeal_id, staff), staff, with_history=True))


@bp.post("/appeals/<int:appeal_id>/transitions")
@endpoint(body=TransitionIn, responses={200: AppealOut}, tags=["appeals"], headers=[CLIENT_UUID_HEADER],
          links={200: APPEAL_LINKS})
def appeal_transition(appeal_id: int, body: TransitionIn):
    """Take a lifecycle step (an action of the state machine) on an appeal, once per Idempotency-Key."""
    staff = viewer()
    outcome = appeal_service.apply_action_once(appeal_id, staff, body, utcnow(), client_uuid=client_uuid(),
                                               serialise=lambda a: appeal_out(a, staff, with_history=True))
    commit(outcome.events)
    return jsonify(outcome.body), outcome.status
