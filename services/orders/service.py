"""The orders service: entrypoints only."""

from __future__ import annotations

from nameko.rpc import rpc

from contracts.base import Id, Viewer
from contracts.catalog import CatalogApi
from contracts.orders import (
    IdempotencyKey,
    OrderCreate,
    OrderOut,
    OrderPage,
    OrderQuery,
    OrderRefs,
    StatusChange,
)
from contracts.users import UsersApi
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext
from mesh.rpc import ServiceClient
from mesh.sql import Database
from mesh.typed import expose
from services.orders import logic
from services.orders.clients import CatalogStock, UsersCheck
from services.orders.models import outbox


class OrdersService:
    """Satisfies ``contracts.orders.OrdersApi``."""

    name = "orders"

    context = CorrelationContext()
    db = Database("orders")
    events = Outbox("orders", outbox)
    catalog = ServiceClient(CatalogApi, "catalog")
    users = ServiceClient(UsersApi, "users")

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def create_order(
        self, user_id: Id, order: OrderCreate, idempotency_key: IdempotencyKey | None = None
    ) -> OrderOut:
        stock, users = CatalogStock(self.catalog), UsersCheck(self.users)
        return logic.create_order(
            self.db, self.events, stock, users, user_id, order, idempotency_key
        )

    @expose
    def known_order_refs(self, refs: OrderRefs) -> list[str]:
        return logic.known_order_refs(self.db, refs)

    @expose
    def list_orders(self, user_id: Id, query: OrderQuery) -> OrderPage:
        return logic.list_orders(self.db, user_id, query)

    @expose
    def get_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return logic.get_order(self.db, order_id, viewer)

    @expose
    def cancel_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return logic.cancel_order(
            self.db, self.events, CatalogStock(self.catalog), order_id, viewer
        )

    @expose
    def set_status(self, order_id: Id, change: StatusChange) -> OrderOut:
        return logic.set_status(self.db, self.events, CatalogStock(self.catalog), order_id, change)
