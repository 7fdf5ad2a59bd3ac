"""Dramatiq on RabbitMQ: the broker, correlation ids on messages, and the sender for nameko."""

from __future__ import annotations

import threading
import types
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware
from nameko.extensions import DependencyProvider

from mesh import tracing
from mesh.context import get_correlation_id, set_correlation_id
from mesh.settings import Settings, get_settings


class CorrelationMiddleware(Middleware):
    """Carries the correlation id (and, tracing on, the traceparent) in message options,
    and restores it in the worker, where a span covers each message."""

    def __init__(self) -> None:
        self._spans: dict[str, tracing.Scope | None] = {}

    def before_enqueue(self, broker: Any, message: dramatiq.Message, delay: Any) -> None:
        correlation_id = get_correlation_id()
        if correlation_id and "correlation_id" not in message.options:
            message.options["correlation_id"] = correlation_id
        if tracing.TRACEPARENT not in message.options:  # a retry keeps its first parent
            tracing.inject(message.options)

    def before_process_message(self, broker: Any, message: MessageProxy) -> None:
        set_correlation_id(message.options.get("correlation_id"))
        if tracing.enabled():
            parent = tracing.extract(message.options)
            self._spans[message.message_id] = tracing.open_span(
                message.actor_name, "consumer", parent, {"mesh.queue": message.queue_name}
            )

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        set_correlation_id(None)
        if tracing.enabled():
            tracing.close_span(self._spans.pop(message.message_id, None), exception)

    after_skip_message = after_process_message


def make_broker(settings: Settings) -> RabbitmqBroker:
    """A broker that publishes with confirms, so an enqueued message is on disk or an error."""
    broker = RabbitmqBroker(url=settings.amqp_uri, confirm_delivery=True)
    broker.add_middleware(CorrelationMiddleware())
    return broker


class TaskSender:
    """Enqueue a Dramatiq message by actor name, without importing the actor."""

    def __init__(self, broker: RabbitmqBroker, lock: threading.Lock) -> None:
        self.broker = broker
        self.lock = lock

    def send(self, queue_name: str, actor_name: str, *args: Any) -> str:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={}
        )
        with self.lock:
            self.broker.enqueue(message)
        return message.message_id


class TaskQueue(DependencyProvider):
    """Nameko provider for :class:`TaskSender`.

    Dramatiq keeps one pika connection per thread; under eventlet every worker is a
    green "thread", which would open a connection per message. Sharing one
    connection behind a (green) lock keeps it to one per service.
    """

    def setup(self) -> None:
        self.broker = make_broker(get_settings())
        self.broker.state = types.SimpleNamespace()  # type: ignore[assignment]
        self.sender = TaskSender(self.broker, threading.Lock())

    def stop(self) -> None:
        self.broker.close()

    def get_dependency(self, worker_ctx: Any) -> TaskSender:
        return self.sender
