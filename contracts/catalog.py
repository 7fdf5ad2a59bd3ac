"""Catalog: products, wishlists, stock reservations, and the product.updated event."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictInt, StringConstraints, model_validator

from contracts.base import ID_MAX, Contract, Event, Text, UtcDatetime

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[Text, StringConstraints(max_length=5000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PriceCents = Annotated[StrictInt, Field(ge=0, le=100_000_000)]
Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
Id = Annotated[StrictInt, Field(ge=1, le=ID_MAX)]
Quantity = Annotated[StrictInt, Field(ge=1, le=100)]
ORDER_REF_MAX = 64
OrderRef = Annotated[Text, StringConstraints(min_length=1, max_length=ORDER_REF_MAX)]
"""Names one order's stock reservation (orders makes it; catalog keys reservations by it)."""


class FieldChange(Contract):
    old: Any = None
    new: Any = None


class ProductUpdated(Event):
    """A product was created, changed or deleted; carries only the fields that changed."""

    type: ClassVar[str] = "product.updated"
    source: ClassVar[str] = "catalog"

    product_id: int
    change: Literal["created", "updated", "deleted"]
    changes: dict[str, FieldChange] = Field(default_factory=dict)


class ProductCreate(Contract):
    name: Name
    description: Description = ""
    price_cents: PriceCents
    currency: Currency = "EUR"
    stock: Stock = 0


class ProductPatch(Contract):
    """A partial update: at least one field."""

    name: Name | None = None
    description: Description | None = None
    price_cents: PriceCents | None = None
    currency: Currency | None = None
    stock: Stock | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProductPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"fields cannot be null: {', '.join(nulls)}")
        return self


class ProductOut(Contract):
    id: int
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ProductQuery(Contract):
    q: Annotated[Text, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 20
    offset: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0


class ProductPage(Contract):
    items: list[ProductOut]
    total: int
    limit: int
    offset: int


class WishlistItem(Contract):
    product: ProductOut
    added_at: UtcDatetime


class ReserveRequest(Contract):
    """Take ``quantity`` from stock for one order; idempotent by ``order_ref``."""

    product_id: Id
    quantity: Quantity
    order_ref: OrderRef


class Reservation(Contract):
    order_ref: str
    product_id: int
    quantity: int
    unit_price_cents: int
    currency: str
