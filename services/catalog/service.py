"""The catalog service: entrypoints only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nameko.timer import timer

from contracts.base import Id, parse_event
from contracts.catalog import (
    OrderRef,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    Reservation,
    ReserveRequest,
    WishlistersAfter,
    WishlistersLimit,
    WishlistItem,
    WishlistPage,
    WishlistQuery,
)
from contracts.orders import OrderRefs, OrderRefState, OrdersApi, OrderStatusChanged
from mesh.events import handle_event
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext
from mesh.rpc import ServiceClient, rpc
from mesh.service_metrics import ServiceMetrics
from mesh.settings import get_settings
from mesh.sql import Database
from mesh.typed import expose
from services.catalog import products, stock, wishlist
from services.catalog.models import outbox


class CatalogService:
    """Satisfies ``contracts.catalog.CatalogApi``."""

    name = "catalog"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    db = Database("catalog")
    events = Outbox("catalog", outbox)
    orders = ServiceClient(OrdersApi, "orders")

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def list_products(self, query: ProductQuery) -> ProductPage:
        return products.list_products(self.db, query)

    @expose
    def get_product(self, product_id: Id) -> ProductOut:
        return products.get_product(self.db, product_id)

    @expose
    def create_product(self, product: ProductCreate) -> ProductOut:
        return products.create_product(self.db, self.events, product)

    @expose
    def update_product(self, product_id: Id, patch: ProductPatch) -> ProductOut:
        return products.update_product(self.db, self.events, product_id, patch)

    @expose
    def delete_product(self, product_id: Id) -> None:
        products.delete_product(self.db, self.events, product_id)

    @expose
    def wishlist_list(self, user_id: Id, query: WishlistQuery) -> WishlistPage:
        return wishlist.wishlist_list(self.db, user_id, query)

    @expose
    def wishlist_add(self, user_id: Id, product_id: Id) -> WishlistItem:
        return wishlist.wishlist_add(self.db, user_id, product_id)

    @expose
    def wishlist_remove(self, user_id: Id, product_id: Id) -> None:
        wishlist.wishlist_remove(self.db, user_id, product_id)

    @expose
    def wishlisted_by(
        self, product_id: Id, after: WishlistersAfter = 0, limit: WishlistersLimit = 1000
    ) -> list[int]:
        return wishlist.wishlisted_by(self.db, product_id, after, limit)

    @expose
    def reserve_stock(self, request: ReserveRequest) -> Reservation:
        return stock.reserve_stock(self.db, self.events, request)

    @expose
    def release_stock(self, order_ref: OrderRef) -> bool:
        return stock.release_stock(self.db, self.events, order_ref)

    @timer(interval=60)
    def settle_reservations(self) -> None:
        """Release the stock of reservations whose order was cancelled or never stored."""
        grace = timedelta(seconds=get_settings().reservation_grace_seconds)

        def states(refs: list[str]) -> list[OrderRefState]:
            return self.orders.order_ref_states(OrderRefs(refs=refs))

        stock.settle_stale(self.db, self.events, states, datetime.now(UTC) - grace)

    @handle_event(OrderStatusChanged)
    def on_order_status_changed(self, body: Any) -> None:
        event = parse_event(OrderStatusChanged, body)
        stock.release_cancelled(self.db, self.events, event)
