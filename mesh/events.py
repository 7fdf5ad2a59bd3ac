"""Event handlers that never lose a message: retry with back-off, then dead-letter.

Nameko acks a message whose handler raised. This handler first re-publishes a
failed message, with confirms, to its queue's retry queue (which hands it back
after a back-off) or to its dead-letter queue. Only then is the original acked.
If even that publish fails, the message is requeued: it is never silently dropped.

Where a failure goes depends on its kind (``mesh.failures``): a permanent one is
dead-lettered at once; a transient one (a server down) is retried until
``EVENT_RETRY_BUDGET_SECONDS`` have passed since the message first failed (carried in
a header), so an outage is waited out; any other is retried ``EVENT_MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kombu.message import Message
from nameko.amqp.publish import Publisher, get_connection
from nameko.events import EventHandler

from contracts.base import Event
from mesh import failures, topology
from mesh.faults import Faults
from mesh.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failed event is retried."""

    max_attempts: int  # failures of unknown kind
    base_ms: int
    max_backoff_ms: int
    budget_seconds: float  # transient failures, from the first failure

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.event_max_attempts,
            base_ms=settings.event_retry_base_ms,
            max_backoff_ms=settings.event_retry_max_ms,
            budget_seconds=settings.event_retry_budget_seconds,
        )


@dataclass(frozen=True)
class Route:
    """Where a failed message goes, after how many attempts, and for how long it waits."""

    where: Literal["retry", "dead"]
    attempts: int
    first_failure: float  # epoch seconds of the message's first failure
    delay_ms: int = 0


def route_failure(
    attempts_so_far: int,
    first_failure: float | None,
    exc: BaseException,
    policy: RetryPolicy,
    now: float,
) -> Route:
    """Decide where a failed message goes (see the module's docstring)."""
    attempts = attempts_so_far + 1
    first = now if first_failure is None else first_failure
    kind = failures.classify(exc)
    if kind == "transient":
        retry = now - first < policy.budget_seconds
    else:
        retry = kind == "unknown" and attempts < policy.max_attempts
    if not retry:
        return Route("dead", attempts, first)
    delay = failures.backoff_ms(attempts, policy.base_ms, policy.max_backoff_ms)
    return Route("retry", attempts, first, delay)


def _header_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class ReliableEventHandler(EventHandler):
    """A SERVICE_POOL event handler with retries and a dead-letter queue."""

    def setup(self) -> None:
        super().setup()
        settings = get_settings()
        self.policy = RetryPolicy.from_settings(settings)
        self.publisher = Publisher(settings.amqp_uri, use_confirms=True, mandatory=True)
        self.faults = Faults.from_spec(settings.mesh_faults, settings.mesh_var_dir)
        with get_connection(settings.amqp_uri) as connection:
            channel = connection.default_channel
            topology.retry_queue(self.queue.name)(channel).declare()
            topology.dead_letter_queue(self.queue.name)(channel).declare()

    def handle_message_processed(
        self, message: Message, result: Any = None, exc_info: Any = None
    ) -> None:
        if exc_info is not None:
            try:
                self._reroute(message, exc_info[1])
            except Exception:
                log.exception("could not park a failed event; requeueing it")
                self.queue_consumer.requeue_message(message)
                return
        elif self.faults:  # crash tests only (mesh.faults): effect applied, not yet acked
            self.faults.hit(f"{self.container.service_name}.after_effect", message.payload)
        self.queue_consumer.ack_message(message)

    def _reroute(self, message: Message, exc: BaseException) -> None:
        headers = dict(message.headers or {})
        route = route_failure(
            int(headers.get(topology.ATTEMPTS_HEADER, 0)),
            _header_float(headers.get(topology.FIRST_FAILURE_HEADER)),
            exc,
            self.policy,
            time.time(),
        )
        headers[topology.ATTEMPTS_HEADER] = route.attempts
        headers[topology.FIRST_FAILURE_HEADER] = route.first_failure
        headers[topology.ERROR_HEADER] = repr(exc)[:1000]
        extra: dict[str, Any] = {}
        if route.where == "retry":
            target = topology.retry_queue(self.queue.name).name
            extra["expiration"] = route.delay_ms / 1000
        else:
            target = topology.dead_letter_queue(self.queue.name).name
            headers["x-mesh-dead-at"] = datetime.now(UTC).isoformat()
        log.warning(
            "event handler failed",
            extra={
                "queue": self.queue.name,
                "to": route.where,
                "attempts": route.attempts,
                "kind": failures.classify(exc),
                "error": repr(exc),
            },
        )
        self.publisher.publish(
            message.body,
            exchange="",
            routing_key=target,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            **extra,
        )


def handle_event(event: type[Event]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a service method as the reliable handler of ``event``."""
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]] = ReliableEventHandler.decorator(
        event.source, event.type
    )
    return decorator
