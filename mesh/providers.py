"""Small nameko dependency providers: correlation context, Redis, MongoDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import redis
from nameko.extensions import DependencyProvider
from pymongo.database import Database

from mesh import tracing
from mesh.clients import make_mongo, make_redis
from mesh.context import CORRELATION_KEY, new_correlation_id, set_correlation_id
from mesh.service_metrics import entrypoint_kind
from mesh.settings import get_settings

SPAN_KINDS: dict[str, tracing.Kind] = {"rpc": "server", "event": "consumer"}


class CorrelationContext(DependencyProvider):
    """Makes the caller's correlation id current for the worker, and passes it on; with
    tracing on, also a span per entrypoint, child of the caller's (``mesh.tracing``)."""

    def setup(self) -> None:
        tracing.setup(self.container.service_name, get_settings())
        self._spans: WeakKeyDictionary[Any, tracing.Scope | None] = WeakKeyDictionary()

    def worker_setup(self, worker_ctx: Any) -> None:
        correlation_id = worker_ctx.data.get(CORRELATION_KEY) or new_correlation_id()
        worker_ctx.data[CORRELATION_KEY] = correlation_id
        set_correlation_id(correlation_id)
        if tracing.enabled():
            self._spans[worker_ctx] = _open_span(worker_ctx, correlation_id)

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        if tracing.enabled():
            error = exc_info[1] if exc_info else None
            tracing.close_span(self._spans.pop(worker_ctx, None), error)

    def worker_teardown(self, worker_ctx: Any) -> None:
        set_correlation_id(None)


def _open_span(worker_ctx: Any, correlation_id: str) -> tracing.Scope | None:
    """The worker's span, a child of the caller's; it goes on in the worker's context data,
    which nameko sends with every RPC call and event the worker makes."""
    entrypoint = worker_ctx.entrypoint
    kind = SPAN_KINDS.get(entrypoint_kind(entrypoint), "internal")  # internal: a timer
    scope = tracing.open_span(
        f"{worker_ctx.service_name}.{entrypoint.method_name}",
        kind,
        tracing.extract(worker_ctx.data),
        {"mesh.correlation_id": correlation_id},
    )
    tracing.inject(worker_ctx.data)
    return scope


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
