"""/api/orders: place, list, read and cancel one's own orders; administrators move statuses.

An order is visible to its owner and to administrators only; to anybody else it does not exist
(404), whether the answer comes from the orders service or from the gateway's cache.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask_jwt_extended import jwt_required

from contracts.base import parse, parse_value
from contracts.orders import (
    IdempotencyKey,
    OrderCreate,
    OrderOut,
    OrderPage,
    OrderQuery,
    StatusChange,
)
from gateway.auth import admin_required, current_user_id, current_user_is_admin
from gateway.cache import cached_json, response_cache
from gateway.deps import rpc
from gateway.http import created, from_rpc, json_body, query_ints, refuse_nulls
from gateway.schemas import NotificationList
from mesh.errors import NotFound

bp = Blueprint("orders", __name__, url_prefix="/api/orders")

KIND = "order"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PRODUCT = "product"  # orders change stock: they invalidate the product's cache entry


def not_found(order_id: int) -> NotFound:
    """One answer for "no such order" and "not yours", so that ids cannot be probed."""
    return NotFound(f"order {order_id} not found")


def visible_order(order_id: int) -> tuple[OrderOut, bool]:
    """``(order, cache hit)`` if the caller owns the order or is an administrator; else 404."""
    user_id, is_admin = current_user_id(), current_user_is_admin()

    def load() -> OrderOut:
        answer = rpc().call("orders", "get_order", order_id, user_id, is_admin)
        return from_rpc(OrderOut, answer)

    try:
        order, hit = response_cache().cached(KIND, order_id, OrderOut, load)
    except NotFound:
        raise not_found(order_id) from None
    # Checked on every answer, above all on a cache hit: the cache is keyed by order id only.
    if order.id != order_id or not (is_admin or order.user_id == user_id):
        raise not_found(order_id)
    return order, hit


def _stock_changed(order: OrderOut) -> dict[str, Any]:
    """The order's JSON, after dropping the product's cached entry (its stock changed)."""
    response_cache().invalidate(PRODUCT, order.product_id)
    return order.model_dump(mode="json")


@bp.post("")
@jwt_required()
def create() -> Response:
    """Place an order. With an ``Idempotency-Key`` header, a retry of the same request
    (after a timeout, say) returns the order already placed instead of placing another."""
    payload = parse(OrderCreate, refuse_nulls(json_body()))
    key = parse_value(IdempotencyKey | None, request.headers.get(IDEMPOTENCY_HEADER), "key")
    with response_cache().invalidating(PRODUCT, payload.product_id):
        answer = rpc().call(
            "orders", "create_order", current_user_id(), payload.model_dump(mode="json"), key
        )
    order = from_rpc(OrderOut, answer)
    return created(order, "orders.get", order_id=order.id)


@bp.get("")
@jwt_required()
def list_mine() -> dict[str, Any]:
    """``?limit=1..100&offset=0..``: the caller's orders, newest first."""
    query = parse(OrderQuery, query_ints("limit", "offset"))
    page = rpc().call("orders", "list_orders", current_user_id(), query.model_dump(mode="json"))
    return from_rpc(OrderPage, page).model_dump(mode="json")


@bp.get("/<id:order_id>")
@jwt_required()
def get(order_id: int) -> Response:
    """One order (owner or administrator); cached for a few minutes (``X-Cache``)."""
    order, hit = visible_order(order_id)
    return cached_json(order, hit)


@bp.post("/<id:order_id>/cancel")
@jwt_required()
def cancel(order_id: int) -> dict[str, Any]:
    """The owner (or an administrator) cancels; the stock goes back to the product."""
    with response_cache().invalidating(KIND, order_id):
        answer = rpc().call(
            "orders", "cancel_order", order_id, current_user_id(), current_user_is_admin()
        )
    return _stock_changed(from_rpc(OrderOut, answer))


@bp.patch("/<id:order_id>")
@admin_required
def set_status(order_id: int) -> dict[str, Any]:
    """Administrators move an order along its state machine."""
    payload = parse(StatusChange, refuse_nulls(json_body()))
    with response_cache().invalidating(KIND, order_id):
        answer = rpc().call("orders", "set_status", order_id, payload.model_dump(mode="json"))
    return _stock_changed(from_rpc(OrderOut, answer))


@bp.get("/<id:order_id>/notifications")
@jwt_required()
def notifications(order_id: int) -> dict[str, Any]:
    """What the mesh told the order's owner about it (owner or administrator)."""
    visible_order(order_id)
    items = rpc().call("notifications", "get_notifications", order_id)
    return from_rpc(NotificationList, {"items": items}).model_dump(mode="json")
