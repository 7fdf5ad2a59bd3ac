"""RPC from one service to another: typed, and bounded in time.

nameko's RpcProxy waits for a reply forever, and a call to a service that is down is
queued, not refused. A worker stuck that way holds its slot, and any stock or state it
took meanwhile. Every call here gives up after ``RPC_TIMEOUT`` seconds with TimeoutError,
which callers treat like any failure: compensate, then retry or report 503.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import eventlet
from nameko.rpc import RpcProxy

from mesh.errors import register_remote_errors
from mesh.settings import get_settings
from mesh.typed import client

P = TypeVar("P")


class BoundedTransport:
    """Calls through one worker's nameko proxy, waiting at most ``seconds`` for the reply."""

    def __init__(self, proxy: Any, seconds: float) -> None:
        self._proxy, self._seconds = proxy, seconds

    def call(self, service: str, method: str, *args: Any) -> Any:
        reply = getattr(self._proxy, method).call_async(*args)
        error = TimeoutError(f"{service}.{method} did not answer within {self._seconds:g} s")
        with eventlet.Timeout(self._seconds, error):
            return reply.result()


class ServiceClient(RpcProxy, Generic[P]):
    """Injects a typed client of ``service`` that satisfies ``protocol``, bounded by
    ``RPC_TIMEOUT``; the service's errors arrive as themselves."""

    def __init__(self, protocol: type[P], service: str, **options: Any) -> None:
        super().__init__(service, **options)
        self.protocol = protocol

    def setup(self) -> None:
        super().setup()
        register_remote_errors()
        self.seconds = get_settings().rpc_timeout

    def get_dependency(self, worker_ctx: Any) -> P:
        transport = BoundedTransport(super().get_dependency(worker_ctx), self.seconds)
        return client(self.protocol, self.target_service, transport)
