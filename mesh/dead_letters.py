"""Inspect and replay dead letters: the event handlers', the mirror's and the e-mail actor's."""

from __future__ import annotations

import dataclasses
from typing import Any

import dramatiq
from kombu import Connection, Queue

from contracts.courses import PIPELINE_QUEUE
from contracts.notifications import EMAIL_QUEUE
from mesh import topology

# Dramatiq parks a message whose retries are spent in "<queue>.XQ", and drops it after 7 days.
DRAMATIQ_QUEUES = (EMAIL_QUEUE, PIPELINE_QUEUE)


class UnknownQueue(LookupError):
    """The queue has no dead-letter queue."""


def dead_letter_queue(queue_name: str) -> str:
    """Where ``queue_name``'s failed messages wait."""
    if queue_name in DRAMATIQ_QUEUES:
        return f"{queue_name}.XQ"
    return topology.dead_letter_queue(queue_name).name


def replayable_queues() -> list[str]:
    return [*topology.all_handler_queue_names(), topology.MIRROR_QUEUE, *DRAMATIQ_QUEUES]


def counts(amqp_uri: str, connect_timeout: float | None = None) -> dict[str, int]:
    """Dead letters waiting per queue they came from (a queue not declared yet counts 0)."""
    with Connection(amqp_uri, connect_timeout=connect_timeout) as connection:
        return {
            name: waiting_messages(connection, dead_letter_queue(name)) or 0
            for name in replayable_queues()
        }


def replay(amqp_uri: str, queue_name: str) -> int:
    """Move the messages now in ``queue_name``'s dead-letter queue back onto it.

    Only as many as were there when it started: a message that fails for good comes
    straight back, and must not be replayed again in a loop. Each starts a fresh retry
    budget: its attempt count and first-failure time are dropped.
    """
    source = dead_letter_queue(queue_name)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        waiting = waiting_messages(connection, source)
        if waiting is None:
            raise UnknownQueue(queue_name)
        channel = connection.channel()
        producer = connection.Producer(channel)
        queue = Queue(source, durable=True)(channel)
        for moved in range(waiting):
            message = queue.get(no_ack=False)
            if message is None:
                return moved
            producer.publish(
                fresh_body(queue_name, message.body),
                exchange="",
                routing_key=queue_name,
                headers=fresh_headers(message.headers),
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
            )
            message.ack()
    return waiting


def waiting_messages(connection: Connection, name: str) -> int | None:
    """Messages in queue ``name``, or None if it does not exist."""
    try:
        bound = Queue(name, durable=True)(connection.channel())
        return int(bound.queue_declare(passive=True).message_count)
    except connection.channel_errors:
        return None


# What RabbitMQ's dead-lettering adds; dropped so a replayed message starts afresh.
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
# What Dramatiq's Retries middleware adds to a message's options as it retries it.
_RETRY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta")


def fresh_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """``headers`` without our retry headers and RabbitMQ's dead-letter trail."""
    return {
        key: value
        for key, value in (headers or {}).items()
        if not key.startswith((topology.MESH_HEADER_PREFIX, *_DEATH_HEADERS))
    }


def fresh_body(queue_name: str, body: bytes | str) -> bytes | str:
    """A Dramatiq message with its retry count reset; any other body as it is."""
    if queue_name not in DRAMATIQ_QUEUES:
        return body
    message = dramatiq.Message.decode(body.encode() if isinstance(body, str) else body)
    options = {k: v for k, v in message.options.items() if k not in _RETRY_OPTIONS}
    return dataclasses.replace(message, options=options).encode()
