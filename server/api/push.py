"""Web Push: the server's public key, and this device's subscription (tied to the caller's login)."""

from __future__ import annotations

from flask import jsonify, request, session

from server.api import bp
from server.api.common import commit, viewer
from server.api.outputs import PushKeyOut, PushSubscriptionOut
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import PushEndpointIn, PushSubscriptionIn
from server.services import push
from server.services.staff import SESSION_TOKEN_KEY, find_token


def request_token() -> str | None:
    """The login token this request authenticated with: the bearer header, else the browser session's."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return session.get(SESSION_TOKEN_KEY)


@bp.get("/push/key")
@endpoint(responses={200: PushKeyOut}, tags=["push"])
def push_key():
    """The VAPID public key (base64url uncompressed P-256 point) to subscribe with."""
    return jsonify(PushKeyOut(public_key=push.public_key()).model_dump())


@bp.post("/push/subscriptions")
@endpoint(body=PushSubscriptionIn, responses={201: PushSubscriptionOut, 200: PushSubscriptionOut}, tags=["push"])
def subscribe_push(body: PushSubscriptionIn):
    """Save this device's push subscription (201 new, 200 known); logging out removes it."""
    row = find_token(request_token())
    sub, created = push.subscribe(viewer(), row.id if row else None, body.endpoint, body.keys.p256dh,
                                  body.keys.auth, request.user_agent.string, utcnow())
    commit()
    out = PushSubscriptionOut(endpoint=sub.endpoint, created_at=sub.created_at).model_dump(mode="json")
    return jsonify(out), 201 if created else 200


@bp.delete("/push/subscriptions")
@endpoint(body=PushEndpointIn, responses={204: None}, tags=["push"])
def unsubscribe_push(body: PushEndpointIn):
    """Remove this device's push subscription (204 whether or not it existed)."""
    push.unsubscribe(viewer(), body.endpoint)
    commit()
    return "", 204
