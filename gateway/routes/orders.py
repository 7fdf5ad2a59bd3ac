"""/api/orders: place, list, read and cancel one's own orders; administrators move statuses.

An order is visible to its owner and to administrators only; to anybody else it does not exist
(404), whether the answer comes from the orders service or from the gateway's cache.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, g, request
from pydantic import TypeAdapter

from contracts.base import parse_value
from contracts.errors import NotFound
from contracts.notifications import OrderNotificationsRequest
from contracts.orders import (
    IdempotencyKey,
    OrderCreate,
    OrderOut,
    OrderPage,
    OrderQuery,
    StatusChange,
)
from gateway.api import Header, endpoint
from gateway.auth import current_user_id, current_viewer
from gateway.cache import cached_json, response_cache
from gateway.deps import services
from gateway.http import created
from gateway.schemas import NotificationList

bp = Blueprint("orders", __name__, url_prefix="/api/orders")

KIND = "order"
PRODUCT = "product"  # orders change stock: they invalidate the product's cache entry
IDEMPOTENCY = Header(
    "Idempotency-Key",
    "Send the same key again (after a timeout, say) to get the order it placed, not a second "
    "order. 1 to 64 characters; reusing it for another order is 409. A 503 answer carries "
    "the key (the gateway's own if none was sent): the order may have been placed, and a retry "
    "with that key returns it or places it once.",
    TypeAdapter(IdempotencyKey).json_schema(),
)


def not_found(order_id: int) -> NotFound:
    """One answer for "no such order" and "not yours", so that ids cannot be probed."""
    return NotFound(f"order {order_id} not found")


def visible_order(order_id: int) -> tuple[OrderOut, bool]:
    """``(order, cache hit)`` if the caller owns the order or is an administrator; else 404."""
    who = current_viewer()
    try:
        order, hit = response_cache().cached(
            KIND, order_id, OrderOut, lambda: services().orders.get_order(order_id, who)
        )
    except NotFound:
        raise not_found(order_id) from None
    # Checked on every answer, above all on a cache hit: the cache is keyed by order id only.
    if order.id != order_id or not (who.is_admin or order.user_id == who.user_id):
        raise not_found(order_id)
    return order, hit


def _stock_changed(order: OrderOut) -> OrderOut:
    """The order, after dropping the product's cached entry (its stock changed)."""
    response_cache().invalidate(PRODUCT, order.product_id)
    return order


@bp.post("")
@endpoint(
    "Order a product",
    tag="orders",
    auth="access",
    status=201,
    body=OrderCreate,
    response=OrderOut,
    errors=(404, 409),
    headers=(IDEMPOTENCY,),
)
def create(body: OrderCreate) -> Response:
    """Place an order. With an ``Idempotency-Key`` header, a retry of the same request
    (after a timeout, say) returns the order already placed instead of placing another.

    Without one the gateway makes one up: a 503 cannot tell whether the order was placed
    (the broker may have lost only the answer), so it hands the key back, and a retry with
    it settles the outcome without a second order."""
    sent = parse_value(IdempotencyKey | None, request.headers.get(IDEMPOTENCY.name), "key")
    key = g.idempotency_key = sent or uuid.uuid4().hex
    with response_cache().invalidating(PRODUCT, body.product_id):
        order = services().orders.create_order(current_user_id(), body, key)
    return created(order, "orders.get", order_id=order.id)


@bp.after_request
def hand_back_the_key(response: Response) -> Response:
    """An order whose outcome is unknown (503) names the key that settles it on a retry."""
    key = g.get("idempotency_key")
    if response.status_code == 503 and key:
        response.headers[IDEMPOTENCY.name] = key
    return response


@bp.get("")
@endpoint(
    "The caller's orders, newest first",
    tag="orders",
    auth="access",
    query=OrderQuery,
    response=OrderPage,
)
def list_mine(query: OrderQuery) -> OrderPage:
    return services().orders.list_orders(current_user_id(), query)


@bp.get("/<id:order_id>")
@endpoint(
    "One order, its owner's or any for admins (cached)",
    tag="orders",
    auth="access",
    response=OrderOut,
    cached=True,
)
def get(order_id: int) -> Response:
    """One order (owner or administrator); cached for a few minutes (``X-Cache``)."""
    order, hit = visible_order(order_id)
    return cached_json(order, hit)


@bp.post("/<id:order_id>/cancel")
@endpoint(
    "Cancel an order; its stock goes back",
    tag="orders",
    auth="access",
    response=OrderOut,
    errors=(409,),
)
def cancel(order_id: int) -> OrderOut:
    """The owner (or an administrator) cancels; the stock goes back to the product."""
    with response_cache().invalidating(KIND, order_id):
        order = services().orders.cancel_order(order_id, current_viewer())
    return _stock_changed(order)


@bp.patch("/<id:order_id>")
@endpoint(
    "Move an order to another status",
    tag="orders",
    auth="admin",
    body=StatusChange,
    response=OrderOut,
    errors=(409,),
)
def set_status(order_id: int, body: StatusChange) -> OrderOut:
    """Administrators move an order along its state machine."""
    with response_cache().invalidating(KIND, order_id):
        order = services().orders.set_status(order_id, body)
    return _stock_changed(order)


@bp.get("/<id:order_id>/notifications")
@endpoint(
    "What the owner was told about it",
    tag="orders",
    auth="access",
    response=NotificationList,
)
def notifications(order_id: int) -> NotificationList:
    """What the mesh told the order's owner about it (owner or administrator)."""
    visible_order(order_id)
    request_ = OrderNotificationsRequest(order_id=order_id)
    return NotificationList(items=services().notifications.get_notifications(request_))
