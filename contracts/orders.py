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
        """Reserve the stock, then store the order; a retry with the same key returns it."""
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

    def known_order_refs(self, refs: OrderRefs) -> list[str]:
        """Which of these stock reservations belong to a stored order."""
        ...
