"""A pooled, thread-safe RPC client over nameko's standalone ClusterRpcProxy.

One started proxy holds one AMQP connection and one reply queue, and can only
serve one call at a time. The pool keeps up to ``size`` of them, created
lazily; a thread checks one out, calls, and gives it back. A proxy that timed
out or lost its connection is stopped and dropped, never reused.

Each request is published with an AMQP ``expiration`` equal to the call's
timeout: a request nobody picked up before the caller gave up is dropped by
the broker, instead of running later (e.g. a register the client saw fail).

Every call goes through its service's bulkhead (``gateway.bulkhead``): a few calls in
flight per service, and a breaker that refuses calls at once for a while after several got
no answer, so that a stopped service cannot hold every gateway thread for RPC_TIMEOUT.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.constants import NON_PERSISTENT
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.rpc import ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy

from contracts.errors import Unavailable
from gateway.bulkhead import Bulkheads, NoAnswer
from mesh import tracing
from mesh.context import CORRELATION_KEY, get_correlation_id
from mesh.errors import register_remote_errors
from mesh.rpc import standalone_config

if TYPE_CHECKING:
    from mesh.settings import Settings

log = logging.getLogger(__name__)

PING = "ping"
"""The readiness probe every service answers (``gateway.routes.health``)."""

# Failures of the proxy's own connection: the proxy cannot be trusted again.
# (nameko raises RuntimeError when its reply consumer is stopped or disconnected.)
_BROKEN = (RpcTimeout, OSError, socket.timeout, AmqpConnectionError, OperationalError, RuntimeError)


class RpcClient(ABC):
    """Calls a method of a mesh service and returns its JSON-able result."""

    @abstractmethod
    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``service.method(*args, **kwargs)``; raise Unavailable if it does not answer."""

    def call_with_timeout(
        self, timeout: float, service: str, method: str, *args: Any, **kwargs: Any
    ) -> Any:
        """Like :meth:`call`, waiting at most ``timeout`` seconds for the reply."""
        return self.call(service, method, *args, **kwargs)

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""


@dataclass
class _Member:
    """One started ClusterRpcProxy and the time it was last given back."""

    runner: ClusterRpcProxy
    idle_since: float = field(default_factory=time.monotonic)

    def method(self, service: str, method: str, timeout: float) -> Any:
        """The callable for ``service.method``, sharing this proxy's reply queue and context."""
        runner = self.runner
        proxy = ServiceProxy(
            runner._worker_ctx,
            service,
            runner._reply_listener,
            expiration=timeout,
            delivery_mode=NON_PERSISTENT,  # mesh.rpc: why RPC messages are transient
        )
        return getattr(proxy, method)

    @property
    def consumer(self) -> Any:
        return self.runner._reply_listener.queue_consumer

    def healthy(self, max_idle: float) -> bool:
        consumer = self.consumer
        fresh = time.monotonic() - self.idle_since < max_idle
        return fresh and not consumer.stopped and bool(consumer.connection.connected)

    def stop(self) -> None:
        try:
            self.runner.stop()
        except Exception:  # a broken connection may fail to close; it is dropped anyway
            log.debug("stopping an RPC proxy failed", exc_info=True)


class RpcPool(RpcClient):
    """Up to ``size`` started proxies shared by the threads of one process."""

    def __init__(
        self,
        amqp_uri: str,
        *,
        size: int = 8,
        timeout: float = 5.0,
        max_idle: float = 120.0,
        bulkheads: Bulkheads | None = None,
    ) -> None:
        self._config = standalone_config(amqp_uri)
        self._timeout = timeout
        self._max_idle = max_idle
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[_Member] = queue.LifoQueue()
        self._closed = False
        self.bulkheads = bulkheads or Bulkheads(max_in_flight=6, failures=5, reset_seconds=5.0)
        register_remote_errors()

    @classmethod
    def from_settings(cls, settings: Settings) -> RpcPool:
        bulkheads = Bulkheads(
            max_in_flight=settings.rpc_max_in_flight,
            failures=settings.rpc_breaker_failures,
            reset_seconds=settings.rpc_breaker_reset_seconds,
            slot_wait=settings.rpc_slot_wait_seconds,
        )
        return cls(
            settings.amqp_uri,
            size=settings.rpc_pool_size,
            timeout=settings.rpc_timeout,
            bulkheads=bulkheads,
        )

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.call_with_timeout(self._timeout, service, method, *args, **kwargs)

    def call_with_timeout(
        self, timeout: float, service: str, method: str, *args: Any, **kwargs: Any
    ) -> Any:
        if self._closed:
            raise Unavailable("the RPC client is closed")
        with tracing.span(f"{service}.{method}", "client"):
            return self.bulkheads.call(
                service,
                lambda: self._call_in_slot(timeout, service, method, args, kwargs),
                probe=method == PING,
            )

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().stop()
            except queue.Empty:
                return

    def _call_in_slot(
        self, timeout: float, service: str, method: str, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if not self._slots.acquire(timeout=timeout):
            raise Unavailable(f"service {service} did not answer (RPC pool exhausted)")
        try:
            return self._call_on_member(timeout, service, method, args, kwargs)
        finally:
            self._slots.release()

    def _call_on_member(
        self, timeout: float, service: str, method: str, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        member = self._checkout(service)
        member.consumer.timeout = timeout
        _set_correlation(member.runner)
        try:
            result = member.method(service, method, timeout)(*args, **kwargs)
        except UnknownService:
            self._checkin(member)
            raise NoAnswer(f"service {service} is not running") from None
        except _BROKEN as exc:
            member.stop()
            log.warning("RPC %s.%s failed: %r", service, method, exc)
            raise NoAnswer(f"service {service} did not answer") from None
        except Exception:
            self._checkin(member)  # a remote error: the proxy itself is fine
            raise
        self._checkin(member)
        return result

    def _checkout(self, service: str) -> _Member:
        while True:
            try:
                member = self._idle.get_nowait()
            except queue.Empty:
                return self._start(service)
            if member.healthy(self._max_idle):
                return member
            member.stop()

    def _checkin(self, member: _Member) -> None:
        if self._closed:
            member.stop()
            return
        member.idle_since = time.monotonic()
        self._idle.put(member)

    def _start(self, service: str) -> _Member:
        runner = ClusterRpcProxy(self._config, timeout=self._timeout)
        member = _Member(runner)
        try:
            runner.start()
        except (OSError, AmqpConnectionError, OperationalError) as exc:
            member.stop()
            log.warning("cannot reach the message broker: %r", exc)
            raise NoAnswer(f"service {service} did not answer (broker unreachable)") from None
        return member


def _set_correlation(runner: ClusterRpcProxy) -> None:
    """Send the request's correlation id as the ``nameko.correlation_id`` header (and, tracing
    on, the call's span as ``nameko.traceparent``)."""
    data = runner._worker_ctx.data
    correlation_id = get_correlation_id()
    if correlation_id:
        data[CORRELATION_KEY] = correlation_id
    else:
        data.pop(CORRELATION_KEY, None)
    tracing.inject(data)
