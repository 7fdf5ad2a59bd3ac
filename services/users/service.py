"""The users service: entrypoints only."""

from __future__ import annotations

from eventlet import tpool

from contracts.base import Id
from contracts.users import Credentials, Email, RegisterRequest, UserIds, UserOut
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext, Redis
from mesh.rpc import rpc
from mesh.service_metrics import ServiceMetrics
from mesh.sql import Database
from mesh.typed import expose
from services.users import logic
from services.users.models import outbox
from services.users.passwords import PasswordHasher


class UsersService:
    """Satisfies ``contracts.users.UsersApi``."""

    name = "users"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    db = Database("users")
    events = Outbox("users", outbox)
    cache = Redis()
    hasher = PasswordHasher(offload=tpool.execute)

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def register(self, request: RegisterRequest) -> UserOut:
        return logic.register(self.db, self.events, self.cache, self.hasher, request)

    @expose
    def authenticate(self, credentials: Credentials) -> UserOut:
        return logic.authenticate(self.db, self.hasher, credentials)

    @expose
    def get_user(self, user_id: Id) -> UserOut:
        return logic.get_user(self.db, self.cache, user_id)

    @expose
    def get_users(self, user_ids: UserIds) -> list[UserOut]:
        return logic.get_users(self.db, user_ids)

    @expose
    def promote_admin(self, email: Email) -> UserOut:
        return logic.promote_admin(self.db, self.cache, email)
