"""The adapters a request handler needs, kept on ``app.extensions``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_limiter import Limiter
from prometheus_client import CollectorRegistry
from redis import Redis

from mesh.rpc_pool import RpcClient

EXTENSION_KEY = "mesh"


@dataclass(frozen=True)
class Deps:
    """What the composition root built for one app."""

    rpc: RpcClient
    redis: Redis
    metrics: CollectorRegistry
    limiter: Limiter


def install(app: Flask, deps: Deps) -> None:
    app.extensions[EXTENSION_KEY] = deps


def deps() -> Deps:
    dependencies: Deps = current_app.extensions[EXTENSION_KEY]
    return dependencies


def rpc() -> RpcClient:
    """The RPC client of the current app."""
    return deps().rpc


def redis() -> Redis:
    """The Redis client of the current app."""
    return deps().redis
