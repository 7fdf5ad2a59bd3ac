"""The adapters a request handler needs, kept on ``app.extensions``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_limiter import Limiter
from prometheus_client import CollectorRegistry
from redis import Redis

from contracts.catalog import CatalogApi
from contracts.content import ContentApi
from contracts.courses import CoursesApi
from contracts.notifications import NotificationsApi
from contracts.orders import OrdersApi
from contracts.users import UsersApi
from gateway.rpc_pool import RpcClient
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
        )


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
