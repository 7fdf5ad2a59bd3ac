"""The users service: entrypoints only."""

from __future__ import annotations

from typing import Any

from eventlet import tpool
from nameko.rpc import rpc

from mesh.errors import MeshError
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext, Redis
from mesh.sql import Database
from services.users import logic
from services.users.models import outbox
from services.users.passwords import PasswordHasher

expected = rpc(expected_exceptions=MeshError)


class UsersService:
    name = "users"

    context = CorrelationContext()
    db = Database("users")
    events = Outbox("users", outbox)
    cache = Redis()
    hasher = PasswordHasher(offload=tpool.execute)

    @rpc
    def ping(self) -> str:
        return self.name

    @expected
    def register(self, payload: Any) -> dict[str, Any]:
        return logic.register(self.db, self.events, self.cache, self.hasher, payload)

    @expected
    def authenticate(self, payload: Any) -> dict[str, Any]:
        return logic.authenticate(self.db, self.hasher, payload)

    @expected
    def get_user(self, user_id: Any) -> dict[str, Any]:
        return logic.get_user(self.db, self.cache, user_id)

    @expected
    def promote_admin(self, email: str) -> dict[str, Any]:
        return logic.promote_admin(self.db, self.cache, email)
