"""The notifications service: entrypoints only."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from contracts.base import parse_event
from contracts.catalog import ProductUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from mesh.errors import MeshError
from mesh.events import handle_event
from mesh.providers import CorrelationContext, Mongo
from mesh.rpc import BoundedRpcProxy
from mesh.tasks import TaskQueue
from services.notifications import logic, messages


class NotificationsService:
    name = "notifications"

    context = CorrelationContext()
    mongo = Mongo(prepare=logic.prepare)
    tasks = TaskQueue()
    users = BoundedRpcProxy("users")
    catalog = BoundedRpcProxy("catalog")

    @rpc
    def ping(self) -> str:
        return self.name

    @handle_event(UserRegistered)
    def on_user_registered(self, body: Any) -> None:
        event = parse_event(UserRegistered, body)
        user = self.users.get_user(event.user_id)
        logic.record(self.mongo, self.tasks, event, messages.welcome(event, user))

    @handle_event(OrderCreated)
    def on_order_created(self, body: Any) -> None:
        event = parse_event(OrderCreated, body)
        user = self.users.get_user(event.user_id)
        logic.record(self.mongo, self.tasks, event, messages.order_placed(event, user))

    @handle_event(OrderStatusChanged)
    def on_order_status_changed(self, body: Any) -> None:
        event = parse_event(OrderStatusChanged, body)
        user = self.users.get_user(event.user_id)
        logic.record(self.mongo, self.tasks, event, messages.order_status(event, user))

    @handle_event(ProductUpdated)
    def on_product_updated(self, body: Any) -> None:
        event = parse_event(ProductUpdated, body)
        messages.notify_wishlisters(self.mongo, self.tasks, self.catalog, self.users, event)

    @rpc(expected_exceptions=MeshError)
    def list_for_user(self, user_id: Any, limit: Any = 20) -> list[dict[str, Any]]:
        return logic.list_for_user(self.mongo, user_id, limit)

    @rpc(expected_exceptions=MeshError)
    def get_notifications(self, order_id: Any, limit: Any = 50) -> list[dict[str, Any]]:
        return logic.for_order(self.mongo, order_id, limit)
