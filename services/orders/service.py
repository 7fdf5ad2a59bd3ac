"""The orders service: entrypoints only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nameko.timer import timer

from contracts.base import Id, Viewer
from contracts.catalog import CatalogApi
from contracts.orders import (
    IdempotencyKey,
    OrderCreate,
    OrderOut,
    OrderPage,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    StatusChange,
)
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext
from mesh.rpc import ServiceClient, rpc
from mesh.service_metrics import ServiceMetrics
from mesh.settings import get_settings
from mesh.sql import Database
from mesh.typed import expose
from services.orders import logic
from services.orders.clients import CatalogStock
from services.orders.models import outbox


class OrdersService:
    """Satisfies ``contracts.orders.OrdersApi``."""

    name = "orders"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    db = Database("orders")
    events = Outbox("orders", outbox)
    catalog = ServiceClient(CatalogApi, "catalog")

    @rpc
    def ping(self) -> str:
        return self.name

    def _stock(self) -> CatalogStock:
        # A best-effort release must leave this call time to answer its own caller.
        return CatalogStock(self.catalog, release_wait=get_settings().rpc_timeout / 2)

    @expose
    def create_order(
        self, user_id: Id, order: OrderCreate, idempotency_key: IdempotencyKey | None = None
    ) -> OrderOut:
        cap = get_settings().order_max_pending_per_user
        return logic.create_order(
            self.db, self.events, self._stock(), user_id, order, idempotency_key, max_pending=cap
        )

    @expose
    def order_ref_states(self, refs: OrderRefs) -> list[OrderRefState]:
        return logic.order_ref_states(self.db, refs)

    @expose
    def list_orders(self, user_id: Id, query: OrderQuery) -> OrderPage:
        return logic.list_orders(self.db, user_id, query)

    @expose
    def get_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return logic.get_order(self.db, order_id, viewer)

    @expose
    def cancel_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return logic.cancel_order(self.db, self.events, self._stock(), order_id, viewer)

    @expose
    def set_status(self, order_id: Id, change: StatusChange) -> OrderOut:
        return logic.set_status(self.db, self.events, self._stock(), order_id, change)

    @timer(interval=60)
    def expire_pending_orders(self) -> None:
        """Cancel orders left unpaid for ORDER_PENDING_TTL_SECONDS; their stock goes back."""
        ttl = timedelta(seconds=get_settings().order_pending_ttl_seconds)
        logic.expire_pending(self.db, self.events, self._stock(), datetime.now(UTC) - ttl)
