"""Names and declarations of every exchange and queue the events travel through.

The queues of every known consumer are declared by the publisher too, so an
event published before its consumer first starts is kept, not dropped.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange, Queue, binding
from nameko.standalone.events import get_event_exchange

from contracts.registry import EVENTS, SUBSCRIPTIONS

MIRROR_QUEUE = "mesh.mirror"
MIRROR_DLQ = f"{MIRROR_QUEUE}.dlq"
# A message the mirror cannot parse is rejected into its dead-letter queue, never dropped.
MIRROR_ARGUMENTS: dict[str, Any] = {
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": MIRROR_DLQ,
}
ATTEMPTS_HEADER = "x-mesh-attempts"
ERROR_HEADER = "x-mesh-error"
# Epoch seconds of a message's first failure: its retry budget runs from there.
FIRST_FAILURE_HEADER = "x-mesh-first-failure"
# Every header of ours starts so; a replay drops them all, and so starts a fresh budget.
MESH_HEADER_PREFIX = "x-mesh-"


def event_exchange(source: str) -> Exchange:
    """The topic exchange nameko uses for ``source``'s events."""
    return get_event_exchange(source, {})


def handler_queue_name(source: str, event_type: str, service: str, method: str) -> str:
    """The queue name nameko gives a SERVICE_POOL event handler."""
    return f"evt-{source}-{event_type}--{service}.{method}"


def handler_queue(source: str, event_type: str, service: str, method: str) -> Queue:
    return Queue(
        handler_queue_name(source, event_type, service, method),
        exchange=event_exchange(source),
        routing_key=event_type,
        durable=True,
    )


def retry_queue(queue_name: str) -> Queue:
    """Holds a failed message for its back-off, then dead-letters it back to its queue."""
    return Queue(
        f"{queue_name}.retry",
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue_name,
        },
    )


def dead_letter_queue(queue_name: str) -> Queue:
    """Where a message lands when its retries are spent; replay with ``mesh.cli dlq``."""
    return Queue(f"{queue_name}.dlq", durable=True)


def mirror_queue() -> Queue:
    """One durable queue bound to every event exchange, consumed by the mirror."""
    bindings = [binding(event_exchange(src), routing_key="#") for src in sources()]
    return Queue(MIRROR_QUEUE, bindings=bindings, durable=True, queue_arguments=MIRROR_ARGUMENTS)


def consumer_queues(source: str) -> list[Queue]:
    """Every known consumer queue of ``source``'s events, with its retry and dead-letter queues."""
    queues: list[Queue] = []
    for event in EVENTS:
        if event.source != source:
            continue
        for service, method in SUBSCRIPTIONS.get(event.type, ()):
            queue = handler_queue(source, event.type, service, method)
            queues += [queue, retry_queue(queue.name), dead_letter_queue(queue.name)]
    return queues


def all_handler_queue_names() -> list[str]:
    """Every consumer queue that has a retry and a dead-letter queue."""
    return [
        handler_queue_name(event.source, event.type, service, method)
        for event in EVENTS
        for service, method in SUBSCRIPTIONS.get(event.type, ())
    ]


def declare_for_publisher(connection: Connection, source: str) -> None:
    """Declare every event exchange and the queues of all of ``source``'s consumers.

    All exchanges, not just ``source``'s: the mirror queue is bound to each of them.
    """
    channel = connection.default_channel
    for name in sources():
        event_exchange(name)(channel).declare()
    for queue in [*consumer_queues(source), mirror_queue(), Queue(MIRROR_DLQ, durable=True)]:
        queue(channel).declare()


def sources() -> list[str]:
    """Every service that publishes events."""
    return sorted({event.source for event in EVENTS})
