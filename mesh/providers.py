"""Small nameko dependency providers: correlation context, Redis, MongoDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from nameko.extensions import DependencyProvider
from pymongo.database import Database

from mesh.clients import make_mongo, make_redis
from mesh.context import CORRELATION_KEY, new_correlation_id, set_correlation_id
from mesh.settings import get_settings


class CorrelationContext(DependencyProvider):
    """Makes the caller's correlation id current for the worker, and passes it on."""

    def worker_setup(self, worker_ctx: Any) -> None:
        correlation_id = worker_ctx.data.get(CORRELATION_KEY) or new_correlation_id()
        worker_ctx.data[CORRELATION_KEY] = correlation_id
        set_correlation_id(correlation_id)

    def worker_teardown(self, worker_ctx: Any) -> None:
        set_correlation_id(None)


class Redis(DependencyProvider):
    """Injects a redis client (str responses)."""

    def setup(self) -> None:
        self.client = make_redis(get_settings())

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> redis.Redis:
        return self.client


class Mongo(DependencyProvider):
    """Injects the mesh's MongoDB database; ``prepare`` creates indexes at start-up."""

    def __init__(self, prepare: Callable[[Database], None] | None = None) -> None:
        self.prepare = prepare

    def setup(self) -> None:
        settings = get_settings()
        self.client = make_mongo(settings)
        self.db = self.client[settings.mongo_db]
        if self.prepare is not None:
            self.prepare(self.db)

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> Database:
        return self.db
