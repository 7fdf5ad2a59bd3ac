"""Catalog: products, wishlists, stock reservations, and the product.updated event."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import Field, StrictInt, StringConstraints

from contracts.base import Contract, Event, Id, Line, Patch, Text, UtcDatetime

Name = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[Text, StringConstraints(max_length=5000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PriceCents = Annotated[StrictInt, Field(ge=0, le=100_000_000)]
Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
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


class ProductPatch(Patch):
    """A partial update: at least one field."""

    name: Name | None = None
    description: Description | None = None
    price_cents: PriceCents | None = None
    currency: Currency | None = None
    stock: Stock | None = None


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


class WishlistQuery(Contract):
    """A page of a wishlist, newest first."""

    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 50
    offset: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0


class WishlistPage(Contract):
    """``next_offset`` is the ``offset`` of the next page, or None on the last one."""

    items: list[WishlistItem]
    limit: int
    offset: int
    next_offset: int | None = None


WishlistersAfter = Annotated[StrictInt, Field(ge=0)]
"""Page the wishlisters of a product by user id: those after this one."""
WishlistersLimit = Annotated[StrictInt, Field(ge=1, le=1000)]


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


class CatalogApi(Protocol):
    """The catalog service's RPC surface (service name ``catalog``)."""

    def list_products(self, query: ProductQuery) -> ProductPage:
        """A page of live products by id; ``q`` matches name or description, any case."""
        ...

    def get_product(self, product_id: Id) -> ProductOut:
        """A live product (NotFound for unknown or deleted)."""
        ...

    def create_product(self, product: ProductCreate) -> ProductOut: ...

    def update_product(self, product_id: Id, patch: ProductPatch) -> ProductOut:
        """Apply the fields the patch sets; only real changes are announced."""
        ...

    def delete_product(self, product_id: Id) -> None:
        """Soft-delete (NotFound when already deleted or unknown)."""
        ...

    def wishlist_list(self, user_id: Id, query: WishlistQuery) -> WishlistPage:
        """A page of the user's wishlist, newest first; deleted products left out."""
        ...

    def wishlist_add(self, user_id: Id, product_id: Id) -> WishlistItem:
        """Idempotent: adding again returns the entry already there."""
        ...

    def wishlist_remove(self, user_id: Id, product_id: Id) -> None:
        """Idempotent: removing what is not there is not an error."""
        ...

    def wishlisted_by(
        self, product_id: Id, after: WishlistersAfter = 0, limit: WishlistersLimit = 1000
    ) -> list[int]:
        """Ids of the users with the product on their wishlist, ascending, from the first one
        above ``after``, at most ``limit`` of them."""
        ...

    def reserve_stock(self, request: ReserveRequest) -> Reservation:
        """Take stock for one order, atomically; idempotent by ``order_ref``."""
        ...

    def release_stock(self, order_ref: OrderRef) -> bool:
        """Give a reservation's stock back once; True if this call released it."""
        ...
