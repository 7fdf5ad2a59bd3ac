"""Inspect and replay the dead-letter queues of the event handlers and the mirror."""

from __future__ import annotations

from kombu import Connection, Queue

from mesh import topology


class UnknownQueue(LookupError):
    """The queue has no dead-letter queue."""


def dead_letter_names() -> list[str]:
    names = [topology.dead_letter_queue(q).name for q in topology.all_handler_queue_names()]
    return [*names, topology.MIRROR_DLQ]


def counts(amqp_uri: str) -> dict[str, int]:
    """Messages waiting in each dead-letter queue (a queue not declared yet counts 0)."""
    result: dict[str, int] = {}
    with Connection(amqp_uri) as connection:
        for name in dead_letter_names():
            try:
                bound = Queue(name, durable=True)(connection.channel())
                result[name] = int(bound.queue_declare(passive=True).message_count)
            except connection.channel_errors:
                result[name] = 0
    return result


def replay(amqp_uri: str, queue_name: str) -> int:
    """Move every message of ``queue_name``'s dead-letter queue back onto it, attempts reset."""
    source = f"{queue_name}.dlq"
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        try:
            Queue(source, durable=True)(connection.channel()).queue_declare(passive=True)
        except connection.channel_errors:
            raise UnknownQueue(queue_name) from None
        channel = connection.channel()
        producer = connection.Producer(channel)
        while (message := Queue(source, durable=True)(channel).get(no_ack=False)) is not None:
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-mesh-")
            }
            producer.publish(
                message.body,
                exchange="",
                routing_key=queue_name,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
            )
            message.ack()
            moved += 1
    return moved
