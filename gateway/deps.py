"""The adapters a request handler needs, kept on ``app.extensions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from flask_limiter import Limiter
from prometheus_client import CollectorRegistry
from redis import Redis

from contracts.analytics import AnalyticsApi
from contracts.assistant import AssistantApi
from contracts.catalog import CatalogApi
from contracts.content import ContentApi
from contracts.courses import CoursesApi
from contracts.notifications import NotificationsApi
from contracts.orders import OrdersApi
from contracts.users import UsersApi
from gateway.rpc_pool import RpcClient
from mesh.settings import get_settings
from mesh.typed import Transport, client

EXTENSION_KEY = "mesh"


@dataclass(frozen=True)
class Services:
    """A typed client of every service the gateway calls."""

    users: UsersApi
    catalog: CatalogApi
    orders: OrdersApi
    notifications: NotificationsApi
    courses: CoursesApi
    content: ContentApi
    assistant: AssistantApi
    analytics: AnalyticsApi

    @classmethod
    def over(cls, transport: Transport) -> Services:
        """Clients that call the services through ``transport`` (the RPC pool)."""
        return cls(
            users=client(UsersApi, "users", transport),
            catalog=client(CatalogApi, "catalog", transport),
            orders=client(OrdersApi, "orders", transport),
            notifications=client(NotificationsApi, "notifications", transport),
            courses=client(CoursesApi, "courses", transport),
            content=client(ContentApi, "content", transport),
            assistant=client(AssistantApi, "assistant", Patient(transport, ask_seconds(), {"ask"})),
            analytics=client(AnalyticsApi, "analytics", transport),
        )


def ask_seconds() -> float:
    """How long the gateway waits for a whole answer: the assistant's own bound on it,
    plus an RPC timeout for the search before it and one for the reply after it."""
    settings = get_settings()
    return settings.assistant_max_seconds + 2 * settings.rpc_timeout


class Patient:
    """A transport that waits up to ``seconds`` for the answer of the ``methods`` long by
    design (through ``RpcClient.call_with_timeout``), and as usual for the others."""

    def __init__(self, transport: Transport, seconds: float, methods: set[str]) -> None:
        self.transport = transport
        self.seconds = seconds
        self.methods = methods

    def call(self, service: str, method: str, *args: Any) -> Any:
        patient = getattr(self.transport, "call_with_timeout", None)
        if patient is None or method not in self.methods:  # tests' transports: no timeouts
            return self.transport.call(service, method, *args)
        return patient(self.seconds, service, method, *args)


@dataclass(frozen=True)
class Deps:
    """What the composition root built for one app."""

    rpc: RpcClient
    services: Services
    redis: Redis
    metrics: CollectorRegistry
    limiter: Limiter


def install(app: Flask, deps: Deps) -> None:
    app.extensions[EXTENSION_KEY] = deps


def deps() -> Deps:
    dependencies: Deps = current_app.extensions[EXTENSION_KEY]
    return dependencies


def services() -> Services:
    """The typed service clients of the current app."""
    return deps().services


def rpc() -> RpcClient:
    """The raw RPC client of the current app (readiness pings)."""
    return deps().rpc


def redis() -> Redis:
    """The Redis client of the current app."""
    return deps().redis
