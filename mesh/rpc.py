"""RPC between services: typed, bounded in time, and without publisher confirms.

nameko's RpcProxy waits for a reply forever, and a call to a service that is down is
queued, not refused. A worker stuck that way holds its slot, and any stock or state it
took meanwhile. Every call here gives up after ``RPC_TIMEOUT`` seconds with TimeoutError,
which callers treat like any failure: compensate, then retry or report 503.

nameko waits for the broker's confirm of every request and every reply, and publishes them
persistent, which makes RabbitMQ write each one to disk. For RPC neither buys anything the
timeout does not already cover: a lost request or reply is a call that timed out, and one
that outlived a broker restart would find its caller gone. So a service's requests to
another (:class:`ServiceClient`) and its replies (:data:`rpc`, used by every service instead
of nameko's: ``mesh.unconfirmed``) are published transient and unconfirmed. Events stay
persistent and confirmed (``mesh.outbox``). The gateway's requests are transient but keep
their confirms, which tell at once that a service was never started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import eventlet
from nameko.rpc import RpcProxy
from nameko.standalone.rpc import ClusterRpcProxy

from mesh.errors import register_remote_errors
from mesh.settings import Settings, get_settings
from mesh.typed import client
from mesh.unconfirmed import MethodProxy, rpc

__all__ = [
    "BoundedTransport",
    "ServiceClient",
    "StandaloneTransport",
    "rpc",
    "standalone_client",
    "standalone_config",
]

P = TypeVar("P")


class BoundedTransport:
    """Calls through one worker's nameko method proxies (``methods(name)``), waiting at most
    ``seconds`` for the reply."""

    def __init__(self, methods: Callable[[str], Any], seconds: float) -> None:
        self._methods, self._seconds = methods, seconds

    def call(self, service: str, method: str, *args: Any) -> Any:
        reply = self._methods(method).call_async(*args)
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
        def method(name: str) -> MethodProxy:
            return MethodProxy(
                worker_ctx, self.target_service, name, self.rpc_reply_listener, **self.options
            )

        transport = BoundedTransport(method, self.seconds)
        return client(self.protocol, self.target_service, transport)


class StandaloneTransport:
    """Calls through a started nameko standalone proxy (outside a Nameko service: a CLI
    command, a Dramatiq actor). Each call waits at most the proxy's timeout."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def call(self, service: str, method: str, *args: Any) -> Any:
        return getattr(getattr(self.proxy, service), method)(*args)


@contextmanager
def standalone_client(
    protocol: type[P], service: str, settings: Settings, timeout: float | None = None
) -> Iterator[P]:
    """A typed client of ``service`` over one AMQP connection, closed on exit. A call that
    gets no answer within ``timeout`` (default ``RPC_TIMEOUT``) raises nameko's RpcTimeout."""
    register_remote_errors()
    config = standalone_config(settings.amqp_uri)
    with ClusterRpcProxy(config, timeout=timeout or settings.rpc_timeout) as proxy:
        yield client(protocol, service, StandaloneTransport(proxy))


def standalone_config(amqp_uri: str) -> dict[str, Any]:
    """nameko's config for a standalone proxy outside eventlet (the gateway, an actor, a CLI).

    ``amqp://`` is spelled ``pyamqp://``, the transport kombu picks for it anyway: for
    ``amqp://``, kombu tries to import librabbitmq on every connection object nameko makes,
    one per publish (about 60 µs each outside eventlet)."""
    if amqp_uri.startswith("amqp://"):
        amqp_uri = "py" + amqp_uri
    return {"AMQP_URI": amqp_uri, "serializer": "json"}
