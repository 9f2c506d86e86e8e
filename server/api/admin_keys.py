"""Open311 API keys, managed by admins: issue (the key is shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify
from pydantic import BaseModel, Field, RootModel

from server.api import bp
from server.api.common import commit, viewer
from server.api.spec import endpoint
from server.models import ApiKey
from server.models.types import utcnow
from server.schemas import Strict, Text
from server.services import apikeys


class ApiKeyIn(Strict):
    """A new Open311 client."""

    name: Text = Field(min_length=1, max_length=120, description="Who the key is for, e.g. 'FixMyStreet Turkestan'.")


class ApiKeyOut(BaseModel):
    """An Open311 API key (its secret is never shown again after creation)."""

    id: int
    name: str
    active: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedApiKeyOut(ApiKeyOut):
    """A key just issued: ``key`` is the secret, shown this once (only its SHA-256 is stored)."""

    key: str


class ApiKeyList(RootModel[list[ApiKeyOut]]):
    """Every API key, newest first."""


def _out(row: ApiKey) -> dict:
    return ApiKeyOut(id=row.id, name=row.name, active=row.active and row.revoked_at is None,
                     created_at=row.created_at, last_used_at=row.last_used_at,
                     revoked_at=row.revoked_at).model_dump(mode="json")


@bp.post("/admin/api-keys")
@endpoint(body=ApiKeyIn, responses={201: IssuedApiKeyOut}, tags=["admin"])
def create_api_key(body: ApiKeyIn):
    """Issue an Open311 API key; the answer carries the key, which is never shown again."""
    issued = apikeys.create_key(body.name, created_by_id=viewer().id, now=utcnow())
    commit()
    return jsonify({**_out(issued.row), "key": issued.key}), 201


@bp.get("/admin/api-keys")
@endpoint(responses={200: ApiKeyList}, tags=["admin"])
def list_api_keys():
    """List the Open311 API keys (without their secrets)."""
    return jsonify([_out(row) for row in apikeys.list_keys()])


@bp.delete("/admin/api-keys/<int:key_id>")
@endpoint(responses={204: None}, tags=["admin"])
def revoke_api_key(key_id: int):
    """Revoke an Open311 API key at once (204; revoking twice changes nothing)."""
    apikeys.revoke_key(key_id, now=utcnow())
    commit()
    return "", 204
