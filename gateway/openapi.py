"""The OpenAPI 3.1 document, built from the contracts and one route table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

from contracts.base import ID_MAX
from contracts.catalog import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    WishlistItem,
)
from contracts.notifications import ListRequest
from contracts.orders import OrderCreate, OrderOut, OrderPage, OrderQuery, StatusChange
from contracts.registry import EVENTS
from contracts.users import Credentials, PublicUser, RegisterRequest, UserOut
from gateway.cache import HEADER as CACHE_HEADER
from gateway.schemas import (
    ErrorBody,
    Health,
    NotificationList,
    Readiness,
    RegisteredUser,
    TokenPair,
    WishlistList,
)

REF = "#/components/schemas/{model}"
Auth = Literal["none", "access", "refresh", "admin"]
BODY_ERRORS = (400, 413, 415, 422)
ERROR_TEXT = {
    400: "Malformed JSON, or not a JSON object",
    401: "Missing, invalid, expired or revoked token (or bad credentials)",
    403: "Not allowed for this account",
    404: "Not found",
    409: "Conflict with an existing resource",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid fields (details: one entry per field)",
    429: "Rate limited (see Retry-After)",
    500: "Internal error",
    503: "A service or store did not answer",
}


@dataclass(frozen=True)
class Operation:
    """One route: what it takes, what it returns, which errors it may answer."""

    method: str
    path: str
    summary: str
    tag: str
    status: int = 200
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    media: str = "application/json"
    auth: Auth = "none"
    errors: tuple[int, ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    also: tuple[tuple[int, type[BaseModel]], ...] = ()
    cached: bool = False


LIMIT_PARAM = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": ListRequest.model_json_schema()["properties"]["limit"],
}
TYPES_PARAM = {
    "name": "types",
    "in": "query",
    "required": False,
    "description": "Comma-separated event types; all when absent.",
    "schema": {"type": "string", "examples": [",".join(e.type for e in EVENTS)]},
}


IDEMPOTENCY_PARAM: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Send the same key again (after a timeout, say) to get the order it placed, "
    "not a second order. 1 to 64 characters; reusing it for another order is 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}


def _query_param(model: type[BaseModel], name: str, description: str = "") -> dict[str, Any]:
    """A query parameter documented from the contract field it is validated against."""
    param = {
        "name": name,
        "in": "query",
        "required": False,
        "schema": model.model_json_schema()["properties"][name],
    }
    return {**param, "description": description} if description else param


PRODUCT_PARAMS = (
    _query_param(ProductQuery, "q", "Text to find in the name or description."),
    _query_param(ProductQuery, "limit"),
    _query_param(ProductQuery, "offset"),
)
ORDER_PARAMS = (_query_param(OrderQuery, "limit"), _query_param(OrderQuery, "offset"))

ROUTES: tuple[Operation, ...] = (
    Operation(
        "post",
        "/api/auth/register",
        "Create an account",
        "auth",
        201,
        RegisterRequest,
        RegisteredUser,
        errors=(409, 429, 503),
    ),
    Operation(
        "post",
        "/api/auth/login",
        "Exchange credentials for tokens",
        "auth",
        request=Credentials,
        response=TokenPair,
        errors=(401, 429, 503),
    ),
    Operation(
        "post",
        "/api/auth/refresh",
        "Rotate a refresh token (send it as Bearer)",
        "auth",
        response=TokenPair,
        auth="refresh",
        errors=(503,),
    ),
    Operation(
        "post",
        "/api/auth/logout",
        "Revoke this login's tokens",
        "auth",
        204,
        auth="access",
        errors=(503,),
    ),
    Operation(
        "get",
        "/api/users/me",
        "The caller's account",
        "users",
        response=UserOut,
        auth="access",
        errors=(404, 503),
    ),
    Operation(
        "get",
        "/api/users/{user_id}",
        "A user's public profile (cached)",
        "users",
        response=PublicUser,
        auth="access",
        errors=(503,),
        cached=True,
    ),
    Operation(
        "get",
        "/api/products",
        "A page of products",
        "products",
        response=ProductPage,
        errors=(422, 503),
        parameters=PRODUCT_PARAMS,
    ),
    Operation(
        "get",
        "/api/products/{product_id}",
        "One product (cached)",
        "products",
        response=ProductOut,
        errors=(503,),
        cached=True,
    ),
    Operation(
        "post",
        "/api/products",
        "Create a product",
        "products",
        201,
        ProductCreate,
        ProductOut,
        auth="admin",
        errors=(409, 503),
    ),
    Operation(
        "patch",
        "/api/products/{product_id}",
        "Change the fields sent (not null)",
        "products",
        request=ProductPatch,
        response=ProductOut,
        auth="admin",
        errors=(409, 503),
    ),
    Operation(
        "delete",
        "/api/products/{product_id}",
        "Delete a product",
        "products",
        204,
        auth="admin",
        errors=(503,),
    ),
    Operation(
        "get",
        "/api/wishlist",
        "The caller's wishlist",
        "wishlist",
        response=WishlistList,
        auth="access",
        errors=(503,),
    ),
    Operation(
        "put",
        "/api/wishlist/{product_id}",
        "Add a product (idempotent)",
        "wishlist",
        response=WishlistItem,
        auth="access",
        errors=(503,),
    ),
    Operation(
        "delete",
        "/api/wishlist/{product_id}",
        "Remove a product (idempotent)",
        "wishlist",
        204,
        auth="access",
        errors=(503,),
    ),
    Operation(
        "post",
        "/api/orders",
        "Order a product",
        "orders",
        201,
        OrderCreate,
        OrderOut,
        auth="access",
        errors=(404, 409, 422, 503),
        parameters=(IDEMPOTENCY_PARAM,),
    ),
    Operation(
        "get",
        "/api/orders",
        "The caller's orders, newest first",
        "orders",
        response=OrderPage,
        auth="access",
        errors=(422, 503),
        parameters=ORDER_PARAMS,
    ),
    Operation(
        "get",
        "/api/orders/{order_id}",
        "One order, its owner's or any for admins (cached)",
        "orders",
        response=OrderOut,
        auth="access",
        errors=(503,),
        cached=True,
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/cancel",
        "Cancel an order; its stock goes back",
        "orders",
        response=OrderOut,
        auth="access",
        errors=(409, 503),
    ),
    Operation(
        "patch",
        "/api/orders/{order_id}",
        "Move an order to another status",
        "orders",
        request=StatusChange,
        response=OrderOut,
        auth="admin",
        errors=(409, 503),
    ),
    Operation(
        "get",
        "/api/orders/{order_id}/notifications",
        "What the owner was told about it",
        "orders",
        response=NotificationList,
        auth="access",
        errors=(503,),
    ),
    Operation(
        "get",
        "/api/notifications",
        "The caller's notifications, newest first",
        "notifications",
        response=NotificationList,
        auth="access",
        errors=(422, 503),
        parameters=(LIMIT_PARAM,),
    ),
    Operation(
        "get",
        "/api/events/stream",
        "Domain events as Server-Sent Events",
        "events",
        media="text/event-stream",
        auth="admin",
        errors=(422, 503),
        parameters=(TYPES_PARAM,),
    ),
    Operation("get", "/health", "The process is alive", "health", response=Health),
    Operation(
        "get",
        "/ready",
        "Every dependency answers",
        "health",
        response=Readiness,
        also=((503, Readiness),),
    ),
    Operation("get", "/metrics", "Prometheus metrics", "health", media="text/plain"),
    Operation("get", "/api/openapi.json", "This document", "docs"),
    Operation("get", "/api/docs", "Human-readable API docs", "docs", media="text/html"),
)


class _Components:
    """Collects model schemas under ``components/schemas``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        self.schemas.update(schema.pop("$defs", {}))
        self.schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}


def _content(media: str, schema: Any) -> dict[str, Any]:
    return {media: {"schema": schema}}


def _success(op: Operation, components: _Components) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "Done; no body"}
    if op.response is not None:
        schema = components.ref(op.response, "serialization")
    else:
        schema = {"type": "object"} if op.media == "application/json" else {"type": "string"}
    success = {"description": op.summary, "content": _content(op.media, schema)}
    if op.cached:
        success["headers"] = {CACHE_HEADER: {"$ref": "#/components/headers/XCache"}}
    return success


_NON_WORD = re.compile(r"\W+")


def _path_names(op: Operation) -> list[str]:
    return re.findall(r"{(\w+)}", op.path)


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": "An id; anything else is a 404.",
        "schema": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
    }


def _error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors) | {500}
    if op.path.startswith("/api/"):
        statuses.add(429)  # the per-IP budget of every /api/ route
    if _path_names(op):
        statuses.add(404)
    if op.request is not None:
        statuses |= set(BODY_ERRORS)
    if op.auth != "none":
        statuses.add(401)
    if op.auth == "admin":
        statuses.add(403)
    return sorted(statuses - {status for status, _ in op.also})


def _responses(op: Operation, components: _Components) -> dict[str, Any]:
    responses = {str(op.status): _success(op, components)}
    error = components.ref(ErrorBody, "serialization")
    for status in _error_statuses(op):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": _content("application/json", error),
        }
    for status, model in op.also:
        schema = components.ref(model, "serialization")
        responses[str(status)] = {"description": op.summary, "content": _content(op.media, schema)}
    return responses


def _operation(op: Operation, components: _Components) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method}_{_NON_WORD.sub('_', op.path).strip('_')}",
        "parameters": [
            {"$ref": "#/components/parameters/RequestId"},
            *(_path_param(name) for name in _path_names(op)),
            *op.parameters,
        ],
        "responses": _responses(op, components),
    }
    if op.request is not None:
        schema = components.ref(op.request, "validation")
        spec["requestBody"] = {"required": True, "content": _content("application/json", schema)}
    spec["security"] = [] if op.auth == "none" else [{"bearerAuth": []}]
    if op.auth == "refresh":
        spec["description"] = "Send the refresh token (not the access token) as Bearer."
    if op.auth == "admin":
        spec["description"] = "Needs an access token of an administrator."
    return spec


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
                "description": "Correlation id (<= 64 of [A-Za-z0-9_-]); echoed back.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            }
        },
        "headers": {
            "XCache": {
                "description": "HIT: served from the gateway's cache; MISS: asked the service.",
                "schema": {"type": "string", "enum": ["HIT", "MISS"]},
            }
        },
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once: it depends on code only)."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for op in ROUTES:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "The mesh gateway", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components.schemas, **_shared_components()},
    }
