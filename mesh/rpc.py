"""RPC from one service to another, bounded in time.

nameko's RpcProxy waits for a reply forever, and a call to a service that is down is
queued, not refused. A worker stuck that way holds its slot, and any stock or state it
took meanwhile. Every call here gives up after ``RPC_TIMEOUT`` seconds with TimeoutError,
which callers treat like any failure: compensate, then retry or report 503.
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.rpc import RpcProxy

from mesh.settings import get_settings


class BoundedReply:
    """A pending reply whose ``result()`` waits at most ``seconds``."""

    def __init__(self, reply: Any, seconds: float, what: str) -> None:
        self._reply, self._seconds, self._what = reply, seconds, what

    def result(self) -> Any:
        error = TimeoutError(f"{self._what} did not answer within {self._seconds:g} s")
        with eventlet.Timeout(self._seconds, error):
            return self._reply.result()


class BoundedMethod:
    def __init__(self, method: Any, seconds: float, what: str) -> None:
        self._method, self._seconds, self._what = method, seconds, what

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_async(*args, **kwargs).result()

    def call_async(self, *args: Any, **kwargs: Any) -> BoundedReply:
        return BoundedReply(self._method.call_async(*args, **kwargs), self._seconds, self._what)


class BoundedServiceProxy:
    def __init__(self, proxy: Any, service: str, seconds: float) -> None:
        self._proxy, self._service, self._seconds = proxy, service, seconds

    def __getattr__(self, name: str) -> BoundedMethod:
        return BoundedMethod(getattr(self._proxy, name), self._seconds, f"{self._service}.{name}")


class BoundedRpcProxy(RpcProxy):
    """A nameko RpcProxy whose calls raise TimeoutError after ``RPC_TIMEOUT`` seconds."""

    def setup(self) -> None:
        super().setup()
        self.seconds = get_settings().rpc_timeout

    def get_dependency(self, worker_ctx: Any) -> BoundedServiceProxy:
        proxy = super().get_dependency(worker_ctx)
        return BoundedServiceProxy(proxy, self.target_service, self.seconds)
