"""The orders service: entrypoints only."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from mesh.errors import MeshError
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext
from mesh.rpc import BoundedRpcProxy
from mesh.sql import Database
from services.orders import logic
from services.orders.clients import CatalogRpc, UsersRpc
from services.orders.models import outbox

expected = rpc(expected_exceptions=MeshError)


class OrdersService:
    name = "orders"

    context = CorrelationContext()
    db = Database("orders")
    events = Outbox("orders", outbox)
    catalog = BoundedRpcProxy("catalog")
    users = BoundedRpcProxy("users")

    @rpc
    def ping(self) -> str:
        return self.name

    @expected
    def create_order(
        self, user_id: Any, payload: Any, idempotency_key: Any = None
    ) -> dict[str, Any]:
        return logic.create_order(
            self.db,
            self.events,
            CatalogRpc(self.catalog),
            UsersRpc(self.users),
            user_id,
            payload,
            idempotency_key,
        )

    @expected
    def known_order_refs(self, refs: Any) -> list[str]:
        return logic.known_order_refs(self.db, refs)

    @expected
    def list_orders(self, user_id: Any, query: Any = None) -> dict[str, Any]:
        return logic.list_orders(self.db, user_id, query)

    @expected
    def get_order(self, order_id: Any, user_id: Any, is_admin: Any = False) -> dict[str, Any]:
        return logic.get_order(self.db, order_id, user_id, is_admin)

    @expected
    def cancel_order(self, order_id: Any, user_id: Any, is_admin: Any = False) -> dict[str, Any]:
        return logic.cancel_order(
            self.db, self.events, CatalogRpc(self.catalog), order_id, user_id, is_admin
        )

    @expected
    def set_status(self, order_id: Any, payload: Any) -> dict[str, Any]:
        return logic.set_status(self.db, self.events, CatalogRpc(self.catalog), order_id, payload)
