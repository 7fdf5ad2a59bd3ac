"""The OpenAPI 3.1 document, built from ``app.url_map`` and the views' declarations
(``gateway.api.endpoint``): a route and its documentation cannot drift apart.

The schemas are the contracts' own ``model_json_schema``: each rule a contract enforces in
code is stated there, next to its validator (``contracts.base.Stated``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask
from pydantic import BaseModel
from werkzeug.routing import Rule

from contracts.base import ID_MAX
from gateway.api import FILE_FIELD, MULTIPART, Endpoint, spec_of
from gateway.cache import HEADER as CACHE_HEADER
from gateway.schemas import ErrorBody
from gateway.uploads import MEDIA_TYPES

REF = "#/components/schemas/{model}"
AUTH_TEXT = {
    "admin": "Needs an access token of an administrator.",
    "instructor": "Needs an access token of an instructor (or an administrator).",
}
BODY_ERRORS = (400, 413, 415, 422)
DOCUMENT_KEY = "mesh.openapi"
METHODS = ("get", "post", "put", "patch", "delete")
ERROR_TEXT = {
    400: "Malformed JSON, or not a JSON object",
    401: "Missing, invalid, expired or revoked token (or bad credentials)",
    403: "Not allowed for this account",
    404: "Not found",
    409: "Conflict with an existing resource",
    413: "Body too large (the message names the limit)",
    415: "Body is not JSON, or an upload of a kind that is not supported",
    422: "Invalid fields or query parameters (details: one entry per field)",
    429: "Rate limited (see Retry-After)",
    500: "Internal error",
    503: "A service or store did not answer",
}


class _Components:
    """Collects model schemas under ``components/schemas``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(
        self,
        model: type[BaseModel],
        mode: Literal["validation", "serialization"],
        body: bool = False,
    ) -> Any:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        self.schemas.update(schema.pop("$defs", {}))
        if body:
            schema = _without_nulls(schema)
        self.schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}


def _without_nulls(schema: dict[str, Any]) -> dict[str, Any]:
    """A request body's schema: a field sent as null is refused (``gateway.http.refuse_nulls``),
    so an optional field is one to leave out, never a null."""
    properties = {}
    for name, field in schema.get("properties", {}).items():
        field = dict(field)
        options = [o for o in field.pop("anyOf", []) if o != {"type": "null"}]
        if len(options) == 1:
            field.update(options[0])
        elif options:
            field["anyOf"] = options
        if field.get("default", 0) is None:
            del field["default"]
        properties[name] = field
    return {**schema, "properties": properties}


@dataclass(frozen=True)
class Route:
    """One method of one URL rule, with its view's declaration."""

    method: str
    path: str
    params: tuple[dict[str, Any], ...]
    spec: Endpoint


def _content(media: str, schema: Any) -> dict[str, Any]:
    return {media: {"schema": schema}}


def _success(route: Route, components: _Components) -> dict[str, Any]:
    spec = route.spec
    if spec.status == 204:
        return {"description": "Done; no body", "headers": _headers()}
    if spec.response is not None:
        schema = components.ref(spec.response, "serialization")
    else:
        schema = {"type": "object"} if spec.media == "application/json" else {"type": "string"}
    headers = _headers(*(["XCache"] if spec.cached else []))
    if spec.status in (201, 202):
        headers["Location"] = {"$ref": "#/components/headers/Location"}
    content = _content(spec.media, schema)
    for media in spec.also_media:
        content.update(_content(media, {"type": "string"}))
    return {"description": spec.summary, "content": content, "headers": headers}


def _headers(*names: str) -> dict[str, Any]:
    """Response headers: the request id on every answer, and ``names`` from the components."""
    return {
        ("X-Request-ID" if name == "RequestId" else name.replace("XCache", CACHE_HEADER)): {
            "$ref": f"#/components/headers/{name}"
        }
        for name in ("RequestId", *names)
    }


HEX_IDS = {"job": "A job id", "conversation": "A conversation id"}
"""Path converters of 32 hex digits, and what the id names."""

_RULE_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _path(rule: Rule) -> tuple[str, tuple[dict[str, Any], ...]]:
    """The OpenAPI path of a URL rule, and its path parameters."""
    params: list[dict[str, Any]] = []
    for converter, name in _RULE_PARAM.findall(rule.rule):
        params.append(_path_param(name, converter or "default", rule))
    return _RULE_PARAM.sub(r"{\2}", rule.rule), tuple(params)


def _path_param(name: str, converter: str, rule: Rule) -> dict[str, Any]:
    if converter in HEX_IDS:
        schema: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
        description = f"{HEX_IDS[converter]}; anything else is a 404."
    elif converter == "id":
        schema = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
        description = "An id; anything else is a 404."
    elif converter == "any":
        schema = {"type": "string", "enum": sorted(rule._converters[name].items)}  # type: ignore[attr-defined]
        description = "One of the listed names."
    else:
        schema, description = {"type": "string"}, ""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _error_statuses(route: Route) -> list[int]:
    spec = route.spec
    statuses = set(spec.errors) | {500}
    if route.path.startswith("/api/"):
        statuses |= {429, 503}  # the per-IP budget of every /api/ route; a service down
    if route.params:
        statuses.add(404)
    if spec.body is not None or spec.upload is not None:
        statuses |= set(BODY_ERRORS)
    if spec.query is not None:
        statuses.add(422)
    if spec.auth != "none":
        statuses.add(401)
    if spec.auth in ("admin", "instructor"):
        statuses.add(403)
    return sorted(statuses - {status for status, _ in spec.also})


def _error_headers(status: int) -> dict[str, Any]:
    extra = {429: ["RetryAfter"], 503: ["RetryAfter"], 401: ["WWWAuthenticate"], 405: ["Allow"]}
    names = extra.get(status, [])
    headers = _headers()
    for name in names:
        header = {"RetryAfter": "Retry-After", "WWWAuthenticate": "WWW-Authenticate"}.get(
            name, name
        )
        headers[header] = {"$ref": f"#/components/headers/{name}"}
    return headers


def _responses(route: Route, components: _Components) -> dict[str, Any]:
    responses = {str(route.spec.status): _success(route, components)}
    error = components.ref(ErrorBody, "serialization")
    for status in _error_statuses(route):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": _content("application/json", error),
            "headers": _error_headers(status),
        }
    for status, model in route.spec.also:
        schema = components.ref(model, "serialization")
        responses[str(status)] = {
            "description": route.spec.summary,
            "content": _content(route.spec.media, schema),
            "headers": _headers(),
        }
    return responses


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each field of a query model, as a query parameter (a query string has no nulls)."""
    schema = _without_nulls(model.model_json_schema())
    required = set(schema.get("required", ()))
    params = []
    for name, field_schema in schema.get("properties", {}).items():
        param = {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        if "description" in field_schema:
            param["description"] = field_schema["description"]
        params.append(param)
    return params


def _header_params(spec: Endpoint) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "in": "header",
            "required": False,
            "description": h.description,
            "schema": h.schema,
        }
        for h in spec.headers
    ]


def _operation(route: Route, components: _Components) -> dict[str, Any]:
    spec = route.spec
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{route.method}_{_NON_WORD.sub('_', route.path).strip('_')}",
        "parameters": [
            {"$ref": "#/components/parameters/RequestId"},
            *route.params,
            *(_query_params(spec.query) if spec.query is not None else []),
            *_header_params(spec),
        ],
        "responses": _responses(route, components),
        "security": [] if spec.auth == "none" else [{"bearerAuth": []}],
    }
    description = spec.description or AUTH_TEXT.get(spec.auth, "")
    if description:
        operation["description"] = description
    content: dict[str, Any] = {}
    if spec.body is not None:
        body = components.ref(spec.body, "validation", body=True)
        content.update(_content("application/json", body))
    if spec.upload is not None:
        content.update(_content(MULTIPART, _upload_schema(spec.upload)))
        content[MULTIPART]["encoding"] = {FILE_FIELD: {"contentType": ", ".join(MEDIA_TYPES)}}
    if content:
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _upload_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A multipart body: the model's fields as form fields, plus the file part."""
    schema = _without_nulls(model.model_json_schema(ref_template=REF))
    schema["properties"][FILE_FIELD] = {
        "type": "string",
        "minLength": 1,
        "description": "The file: a PDF, SRT, WebVTT, HTML, Markdown or plain-text document. "
        "Its name's extension, else its part's content type, names its kind; bytes that are "
        "not a document of a kind read here are 415, a broken one (a corrupt PDF) 422.",
    }
    schema["required"] = [*schema.get("required", []), FILE_FIELD]
    return schema


_NON_WORD = re.compile(r"\W+")


def _shared_components() -> dict[str, Any]:
    return {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        },
        "parameters": {
            "RequestId": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "Correlation id, echoed back and logged. A value that is not 1 "
                "to 64 of [A-Za-z0-9_-] is replaced by a new id, never refused.",
                "schema": {"type": "string"},
            }
        },
        "headers": {
            "RequestId": {
                "description": "The request's correlation id.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            },
            "XCache": {
                "description": "HIT: served from the gateway's cache; MISS: asked the service.",
                "schema": {"type": "string", "enum": ["HIT", "MISS"]},
            },
            "Location": {
                "description": "The URL of the resource created.",
                "schema": {"type": "string"},
            },
            "RetryAfter": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            "WWWAuthenticate": {
                "description": "The Bearer challenge.",
                "schema": {"type": "string"},
            },
            "Allow": {"description": "The methods the path takes.", "schema": {"type": "string"}},
        },
    }


def routes(app: Flask) -> list[Route]:
    """Every declared route of ``app``; a view without a declaration is an error."""
    found: list[Route] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        spec = spec_of(app.view_functions[rule.endpoint])
        if spec is None:
            raise LookupError(f"{rule.rule} ({rule.endpoint}) has no @endpoint declaration")
        path, params = _path(rule)
        for method in METHODS:
            if method.upper() in (rule.methods or ()):
                found.append(Route(method, path, params, spec))
    return found


def build_document(app: Flask) -> dict[str, Any]:
    """The whole OpenAPI document of ``app``."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes(app):
        paths.setdefault(route.path, {})[route.method] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "The mesh gateway", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components.schemas, **_shared_components()},
    }


def document(app: Flask) -> dict[str, Any]:
    """The document, built once per app (it depends on code only)."""
    if DOCUMENT_KEY not in app.extensions:
        app.extensions[DOCUMENT_KEY] = build_document(app)
    built: dict[str, Any] = app.extensions[DOCUMENT_KEY]
    return built
