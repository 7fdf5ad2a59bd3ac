"""The notifications service: entrypoints only."""

from __future__ import annotations

from typing import Any

from nameko.rpc import RpcProxy, rpc

from contracts.base import parse_event
from contracts.users import UserRegistered
from mesh.errors import MeshError
from mesh.events import handle_event
from mesh.providers import CorrelationContext, Mongo
from mesh.tasks import TaskQueue
from services.notifications import logic


class NotificationsService:
    name = "notifications"

    context = CorrelationContext()
    mongo = Mongo(prepare=logic.prepare)
    tasks = TaskQueue()
    users = RpcProxy("users")

    @rpc
    def ping(self) -> str:
        return self.name

    @handle_event(UserRegistered)
    def on_user_registered(self, body: Any) -> None:
        event = parse_event(UserRegistered, body)
        user = self.users.get_user(event.user_id)
        logic.record(self.mongo, self.tasks, event, logic.welcome(event, user))

    @rpc(expected_exceptions=MeshError)
    def list_for_user(self, user_id: Any, limit: Any = 20) -> list[dict[str, Any]]:
        return logic.list_for_user(self.mongo, user_id, limit)
