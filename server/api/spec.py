"""Request parsing by schema, and the OpenAPI 3.1 document built from the same schemas.

A view declares what it takes and returns with :func:`endpoint`; the decorator
parses and validates the input (JSON body, query string), hands the view the
pydantic objects, and records the schemas so :func:`openapi_document` can
describe exactly what is validated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from flask import Flask, request
from pydantic import BaseModel, ValidationError

from server.api.errors import ApiError, field_errors
from server.schemas import MAX_ID


@dataclass
class EndpointSpec:
    """What one view takes and returns, for validation and the document."""

    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    public: bool = False
    form: type[BaseModel] | None = None
    files: list[str] = field(default_factory=list)
    optional_files: list[str] = field(default_factory=list)
    links: dict[int, dict[str, dict]] = field(default_factory=dict)


def operation_id(endpoint_name: str, method: str) -> str:
    """The document's operationId of an endpoint's method (``api.get_appeal``, GET -> ``api_get_appeal``)."""
    return endpoint_name.replace(".", "_") + ("" if method == "GET" else f"_{method.lower()}")


def link(endpoint_name: str, method: str = "GET", **parameters: str) -> dict:
    """An OpenAPI link to an endpoint's operation, its parameters filled from the answer
    (``appeal_id="$response.body#/id"``)."""
    return {"operationId": operation_id(endpoint_name, method), "parameters": parameters}


def _reject_constant(value: str):
    # JSON has no NaN or Infinity; Python's parser accepts them, so refuse them here.
    raise ValueError(value)


def json_body() -> dict:
    """The request's JSON object, or an ApiError saying what is wrong with it."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type")
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw or b"", parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "json_object_required")
    return data


def parse(model: type[BaseModel], data: dict, prefix: str = ""):
    """Validate ``data`` against ``model`` or raise a 400 naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_failed", field_errors(exc, prefix)) from None


def form_fields() -> dict:
    """The request's multipart form fields (not its files), or an ApiError if it is not multipart."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "multipart_required")
    # The CSRF token may travel as a form field; it is checked before the view, not part of the input.
    return {k: v for k, v in request.form.items() if k != "csrf_token"}


def endpoint(summary: str | None = None, *, body=None, query=None, responses=None, tags=None, headers=None,
             form=None, files=None, optional_files=None, links=None, max_content_length: int | None = None):
    """Declare a view's schemas; the view receives ``body=`` / ``query=`` / ``form=`` as parsed models.

    ``form`` is a multipart/form-data body whose fields ``form`` validates; ``files`` names its required
    file parts and ``optional_files`` the others (documented as binary; the view reads them).
    ``links`` (status -> OpenAPI links, see :func:`link`) say which operations take a value of the
    answer (the new appeal's id); clients and the stateful fuzz follow them. ``max_content_length``
    raises the body limit for this endpoint alone (applied by server.security before anything reads the body).
    """

    def decorate(view: Callable):
        spec = EndpointSpec(
            summary=summary or (view.__doc__ or "").strip().splitlines()[0],
            body=body,
            query=query,
            responses=responses or {200: None},
            tags=tags or [],
            headers=headers or [],
            form=form,
            files=list(files or []),
            optional_files=list(optional_files or []),
            links=dict(links or {}),
        )

        @wraps(view)
        def wrapper(*args, **kwargs):
            if any(isinstance(value, int) and value > MAX_ID for value in kwargs.values()):
                raise ApiError(404, "not_found")  # a path id past BIGINT: no such row (the driver cannot bind it)
            if body is not None:
                kwargs["body"] = parse(body, json_body())
            if query is not None:
                params = request.args.to_dict()
                params.pop("lang", None)  # the language switch applies to every request (server.i18n)
                kwargs["query"] = parse(query, params)
            if form is not None:
                kwargs["form"] = parse(form, form_fields())
            return view(*args, **kwargs)

        wrapper.openapi = spec  # type: ignore[attr-defined]
        if max_content_length is not None:
            wrapper.max_content_length = max_content_length  # type: ignore[attr-defined]
        return wrapper

    return decorate


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


# pydantic writes the bounds of an optional constrained number (``float | None = Field(ge=...)``) under
# its own names, which JSON Schema ignores: the document then allowed any number. Renamed here.
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_bounds(node):
    """``node`` with pydantic's ``ge``/``le``/``gt``/``lt`` next to a numeric ``type`` renamed to JSON Schema's."""
    if isinstance(node, list):
        return [_json_schema_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    numeric = node.get("type") in ("number", "integer")
    return {(_BOUNDS[key] if numeric and key in _BOUNDS else key): _json_schema_bounds(value)
            for key, value in node.items()}


def _model_schema(model: type[BaseModel], components: dict, mode: str) -> dict:
    schema = _json_schema_bounds(model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode))
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    return schema


def _schema(model: type[BaseModel], components: dict, mode: str) -> dict:
    schema = _model_schema(model, components, mode)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _form_schema(spec: EndpointSpec, components: dict) -> dict:
    """A multipart body: the form model's fields and the file parts in one object.

    One object, not ``allOf`` [model, files]: the form models forbid unknown fields, so the file parts
    would be refused by the model's half of an ``allOf`` and no body could satisfy both. The CSRF
    token may travel as a field (a browser form); it is checked before the view, not part of the input.
    """
    schema = _model_schema(spec.form, components, "validation")
    binary = {"type": "string", "format": "binary"}
    schema["properties"] = {**schema.get("properties", {}), "csrf_token": {"type": "string"},
                            **{name: binary for name in [*spec.files, *spec.optional_files]}}
    schema["required"] = [*schema.get("required", []), *spec.files]
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    schema = _json_schema_bounds(model.model_json_schema())
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


ERROR_TEXTS = {400: "Invalid input", 401: "Not logged in", 403: "Not allowed", 404: "Not found",
               409: "The appeal changed meanwhile", 413: "Request body too large", 415: "Unsupported media type",
               422: "Refused by the business rules", 429: "Too many attempts; retry after Retry-After seconds",
               503: "The database is unavailable; retry"}


def _error_statuses(public: bool, spec: EndpointSpec, method: str) -> list[int]:
    """The error statuses any operation like this one can answer (each with the Error body).

    401 only where a login is needed; 413 and 415 where a body is read; 403 on every write too
    (a cookie write from another site's page is refused, server.hardening); 503 everywhere
    (the database went away: retry).
    """
    statuses = [400, 404, 422, 503]
    if not public:
        statuses.append(401)
    if not public or method not in ("GET", "HEAD"):
        statuses.append(403)
    if spec.body is not None or spec.form is not None:
        statuses += [413, 415]
    return sorted(statuses)


def openapi_document(app: Flask, title: str, version: str) -> dict:
    """Build the OpenAPI 3.1 document from the registered views' specs.

    An operation is public (no ``security``, no 401) exactly when the policy table says so.
    """
    from server.security import PUBLIC, policy_for  # late: server.security imports the API package

    components: dict = {"Error": ERROR_SCHEMA}
    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        spec: EndpointSpec | None = getattr(view, "openapi", None)
        if spec is None:
            continue
        path = rule.rule
        path_params = []
        for arg in rule.arguments:
            converter = rule._converters.get(arg)
            integer = type(converter).__name__ == "IntegerConverter"
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
            schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID} if integer else {"type": "string"}
            path_params.append({"name": arg, "in": "path", "required": True, "schema": schema})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict = {
                "operationId": operation_id(rule.endpoint, method),
                "summary": spec.summary,
                "tags": spec.tags,
                "parameters": list(path_params) + list(spec.headers),
                "responses": {},
            }
            if spec.query is not None:
                op["parameters"] += _query_parameters(spec.query)
            if spec.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(spec.body, components, "validation")}},
                }
            if spec.form is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _form_schema(spec, components)}},
                }
            for status, model in spec.responses.items():
                content = {"application/json": {"schema": _schema(model, components, "serialization")}} if model \
                    else {}
                if status >= 400 and not content:  # an error a view declares answers with the error body
                    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                texts = {200: "OK", 201: "Created", 204: "No content", **ERROR_TEXTS}
                entry = {"description": texts.get(status, "Response")}
                if content:
                    entry["content"] = content
                if status in spec.links:
                    entry["links"] = spec.links[status]
                op["responses"][str(status)] = entry
            public = policy_for(rule.endpoint) == PUBLIC
            for status in _error_statuses(public, spec, method):
                op["responses"].setdefault(str(status), {
                    "description": ERROR_TEXTS[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
            if not public:  # the policy table (server.security) decides, so the document cannot disagree with it
                op["security"] = [{"bearer": []}, {"cookie": []}]
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Jauap, the Turkestan 109 contact centre API. Errors are JSON in the requester's "
            "language (Accept-Language: kk, ru, en).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "POST /api/v1/auth/token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "jauap_session"},
            },
        },
    }


def finite(value: float | None) -> float | None:
    """Round-trip helper: None for non-finite values so JSON output stays valid."""
    if value is None or not math.isfinite(value):
        return None
    return value
