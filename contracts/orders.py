"""Orders: RPC payloads and the order.created / order.status_changed events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import Field, StrictInt, StringConstraints

from contracts.base import Contract, Event, Id, Text, UtcDatetime, Viewer
from contracts.catalog import OrderRef, Quantity

Status = Literal["pending", "paid", "shipped", "delivered", "cancelled"]

# The state machine: from each status, the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}

Fate = Literal["open", "kept", "released"]
"""What becomes of an order's stock reservation: still ``open`` while the order can be
cancelled, ``kept`` for good once it cannot, ``released`` once it is cancelled."""


def reservation_fate(status: Status) -> Fate:
    """The fate of the stock reserved for an order in ``status`` (see :data:`Fate`)."""
    if status == "cancelled":
        return "released"
    return "open" if "cancelled" in TRANSITIONS[status] else "kept"


IdempotencyKey = Annotated[Text, StringConstraints(min_length=1, max_length=64)]
"""A client's key for one order attempt (the Idempotency-Key header): a retry is not a new order."""


class OrderCreated(Event):
    type: ClassVar[str] = "order.created"
    source: ClassVar[str] = "orders"

    order_id: int
    user_id: int
    product_id: int
    quantity: int
    # The order's amount: optional, as events published before it was added carry none.
    total_cents: int | None = None
    currency: str | None = None


class OrderStatusChanged(Event):
    """An order moved; ``order_ref`` names its stock reservation, which a cancel releases."""

    type: ClassVar[str] = "order.status_changed"
    source: ClassVar[str] = "orders"

    order_id: int
    user_id: int
    order_ref: str
    old_status: Status
    new_status: Status


class OrderCreate(Contract):
    product_id: Id
    quantity: Quantity


class StatusChange(Contract):
    status: Status


class OrderQuery(Contract):
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 20
    offset: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0


class OrderOut(Contract):
    id: int
    user_id: int
    product_id: int
    quantity: int
    unit_price: int  # cents
    total: int  # cents
    currency: str
    status: Status
    created_at: UtcDatetime
    updated_at: UtcDatetime


class OrderRefs(Contract):
    """Stock reservations the catalog asks about (see catalog's reservation settling)."""

    refs: list[OrderRef] = Field(max_length=1000)


class OrderRefState(Contract):
    """The status of the stored order that holds a stock reservation."""

    order_ref: str
    status: Status


class OrderPage(Contract):
    items: list[OrderOut]
    limit: int
    offset: int


class OrdersApi(Protocol):
    """The orders service's RPC surface (service name ``orders``).

    An order is visible to its owner and to administrators; to anyone else it does not
    exist (NotFound).
    """

    def create_order(
        self, user_id: Id, order: OrderCreate, idempotency_key: IdempotencyKey | None = None
    ) -> OrderOut:
        """Reserve the stock, then store the order; a retry with the same key returns it.
        Conflict when the user already holds ORDER_MAX_PENDING_PER_USER pending orders.
        ``user_id`` is trusted, not looked up: the gateway takes it from a verified token."""
        ...

    def list_orders(self, user_id: Id, query: OrderQuery) -> OrderPage:
        """A page of the user's orders, newest first."""
        ...

    def get_order(self, order_id: Id, viewer: Viewer) -> OrderOut: ...

    def cancel_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        """Cancel (owner or administrator); the stock goes back to the catalog."""
        ...

    def set_status(self, order_id: Id, change: StatusChange) -> OrderOut:
        """Any legal move of the state machine (the caller checks for an administrator)."""
        ...

    def order_ref_states(self, refs: OrderRefs) -> list[OrderRefState]:
        """The status of the order holding each of these stock reservations; a ref that no
        stored order holds is left out (its order was never stored)."""
        ...
