"""The catalog service: entrypoints only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nameko.rpc import rpc
from nameko.timer import timer

from contracts.base import parse_event
from contracts.orders import OrderStatusChanged
from mesh.errors import MeshError
from mesh.events import handle_event
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext
from mesh.rpc import BoundedRpcProxy
from mesh.settings import get_settings
from mesh.sql import Database
from services.catalog import products, stock, wishlist
from services.catalog.models import outbox

expected = rpc(expected_exceptions=MeshError)


class CatalogService:
    name = "catalog"

    context = CorrelationContext()
    db = Database("catalog")
    events = Outbox("catalog", outbox)
    orders = BoundedRpcProxy("orders")

    @rpc
    def ping(self) -> str:
        return self.name

    @expected
    def list_products(self, query: Any = None) -> dict[str, Any]:
        return products.list_products(self.db, query)

    @expected
    def get_product(self, product_id: Any) -> dict[str, Any]:
        return products.get_product(self.db, product_id)

    @expected
    def create_product(self, payload: Any) -> dict[str, Any]:
        return products.create_product(self.db, self.events, payload)

    @expected
    def update_product(self, product_id: Any, payload: Any) -> dict[str, Any]:
        return products.update_product(self.db, self.events, product_id, payload)

    @expected
    def delete_product(self, product_id: Any) -> None:
        products.delete_product(self.db, self.events, product_id)

    @expected
    def wishlist_list(self, user_id: Any) -> list[dict[str, Any]]:
        return wishlist.wishlist_list(self.db, user_id)

    @expected
    def wishlist_add(self, user_id: Any, product_id: Any) -> dict[str, Any]:
        return wishlist.wishlist_add(self.db, user_id, product_id)

    @expected
    def wishlist_remove(self, user_id: Any, product_id: Any) -> None:
        wishlist.wishlist_remove(self.db, user_id, product_id)

    @expected
    def wishlisted_by(self, product_id: Any) -> list[int]:
        return wishlist.wishlisted_by(self.db, product_id)

    @expected
    def reserve_stock(self, payload: Any) -> dict[str, Any]:
        return stock.reserve_stock(self.db, self.events, payload)

    @expected
    def release_stock(self, order_ref: Any) -> bool:
        return stock.release_stock(self.db, self.events, order_ref)

    @timer(interval=60)
    def settle_reservations(self) -> None:
        """Release the stock of reservations whose order was never stored."""
        grace = timedelta(seconds=get_settings().reservation_grace_seconds)
        stock.settle_stale(
            self.db, self.events, self.orders.known_order_refs, datetime.now(UTC) - grace
        )

    @handle_event(OrderStatusChanged)
    def on_order_status_changed(self, body: Any) -> None:
        event = parse_event(OrderStatusChanged, body)
        stock.release_cancelled(self.db, self.events, event)
