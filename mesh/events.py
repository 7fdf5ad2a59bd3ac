"""Event handlers that never lose a message: retry with back-off, then dead-letter.

Nameko acks a message whose handler raised. This handler first re-publishes a
failed message, with confirms, to its queue's retry queue (which hands it back
after a back-off) or, once its attempts are spent or the failure is permanent,
to its dead-letter queue. Only then is the original acked. If even that
publish fails, the message is requeued: it is never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kombu.message import Message
from nameko.amqp.publish import Publisher, get_connection
from nameko.events import EventHandler

from contracts.base import Event
from contracts.errors import PermanentFailure
from mesh import topology
from mesh.settings import get_settings

log = logging.getLogger(__name__)

MAX_BACKOFF_MS = 60_000


def backoff_ms(attempt: int, base_ms: int) -> int:
    """Exponential back-off for the ``attempt``-th failure (1-based), capped at a minute."""
    return int(min(base_ms * 2 ** (attempt - 1), MAX_BACKOFF_MS))


def route_failure(attempts_so_far: int, exc: BaseException, max_attempts: int) -> tuple[str, int]:
    """Decide where a failed message goes: ``("retry", attempts)`` or ``("dead", attempts)``."""
    attempts = attempts_so_far + 1
    if isinstance(exc, PermanentFailure) or attempts >= max_attempts:
        return "dead", attempts
    return "retry", attempts


class ReliableEventHandler(EventHandler):
    """A SERVICE_POOL event handler with retries and a dead-letter queue."""

    def setup(self) -> None:
        super().setup()
        settings = get_settings()
        self.max_attempts = settings.event_max_attempts
        self.base_ms = settings.event_retry_base_ms
        self.publisher = Publisher(settings.amqp_uri, use_confirms=True, mandatory=True)
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
        self.queue_consumer.ack_message(message)

    def _reroute(self, message: Message, exc: BaseException) -> None:
        headers = dict(message.headers or {})
        where, attempts = route_failure(
            int(headers.get(topology.ATTEMPTS_HEADER, 0)), exc, self.max_attempts
        )
        headers[topology.ATTEMPTS_HEADER] = attempts
        headers[topology.ERROR_HEADER] = repr(exc)[:1000]
        extra: dict[str, Any] = {}
        if where == "retry":
            target = topology.retry_queue(self.queue.name).name
            extra["expiration"] = backoff_ms(attempts, self.base_ms) / 1000
        else:
            target = topology.dead_letter_queue(self.queue.name).name
            headers["x-mesh-dead-at"] = datetime.now(UTC).isoformat()
        log.warning(
            "event handler failed",
            extra={"queue": self.queue.name, "to": where, "attempts": attempts, "error": repr(exc)},
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
