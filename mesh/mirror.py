"""The mirror: copies every domain event from RabbitMQ onto the Redis pub/sub channel of its name.

Run it with ``python -m mesh.mirror``. The queue is durable and declared by
every publisher too, so events wait for the mirror; a message is acked only
once Redis has taken it, and an event is published at most once per event_id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import uuid
from typing import Any

import aio_pika
import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage

from mesh import topology
from mesh.cache_keys import TTLS, generation_key, stale_entry, value_key
from mesh.context import CORRELATION_KEY, set_correlation_id
from mesh.logging import configure_logging
from mesh.settings import Settings, get_settings

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 7 * 24 * 3600
RETRY_DELAY_SECONDS = 1.0

# Mark the event seen and publish it in one atomic step: a crash can neither
# publish without marking nor mark without publishing.
PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return -1
"""


def parse(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(event type, event id, event) of a message body; ValueError if it is not an event."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("event body is not an object")
    event_type, event_id = event.get("type"), event.get("event_id")
    if not isinstance(event_type, str) or not isinstance(event_id, str):
        raise ValueError("event lacks a type or an event_id")
    return event_type, event_id, event


async def mirror_one(message: AbstractIncomingMessage, redis: aioredis.Redis) -> None:
    """Copy one message to Redis, then ack; on a Redis failure requeue it after a pause."""
    set_correlation_id(str((message.headers or {}).get(f"nameko.{CORRELATION_KEY}") or "") or None)
    try:
        event_type, event_id, event = parse(message.body)
    except ValueError as exc:
        log.error("mirror got a broken event; dead-lettering it", extra={"error": str(exc)})
        await message.reject(requeue=False)
        return
    try:
        receivers = await redis.register_script(PUBLISH_ONCE)(
            keys=[f"mirror:seen:{event_id}"],
            args=[event_type, message.body.decode(), SEEN_TTL_SECONDS],
        )
    except Exception as exc:
        log.warning("redis refused an event; requeueing", extra={"error": repr(exc)})
        await asyncio.sleep(RETRY_DELAY_SECONDS)
        await message.nack(requeue=True)
        return
    await message.ack()
    log.info("mirrored", extra={"type": event_type, "event_id": event_id, "receivers": receivers})
    await invalidate_cache(redis, event)


async def invalidate_cache(redis: aioredis.Redis, event: dict[str, Any]) -> None:
    """Make the gateway's cached copy of what the event changed stale (a safety net: the
    gateway already does so after its own writes, and every entry expires anyway)."""
    entry = stale_entry(event)
    if entry is None:
        return
    kind, key = entry
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(generation_key(kind, key), uuid.uuid4().hex, ex=2 * TTLS[kind])
            pipe.delete(value_key(kind, key))
            await pipe.execute()
    except Exception as exc:
        log.warning("cache invalidation failed", extra={"kind": kind, "error": repr(exc)})


async def declare(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
    """The mirror queue, bound to every event exchange (same arguments as the publishers use)."""
    await channel.declare_queue(topology.MIRROR_DLQ, durable=True)
    queue = await channel.declare_queue(
        topology.MIRROR_QUEUE, durable=True, arguments=dict(topology.MIRROR_ARGUMENTS)
    )
    for source in topology.sources():
        exchange = await channel.declare_exchange(
            f"{source}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await queue.bind(exchange, routing_key="#")
    return queue


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Mirror until ``stop`` is set."""
    redis = aioredis.from_url(settings.redis_url)
    connection = await aio_pika.connect_robust(settings.amqp_uri)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await declare(channel)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await mirror_one(message, redis)

        tag = await queue.consume(on_message)
        log.info("mirror started", extra={"queue": topology.MIRROR_QUEUE})
        await stop.wait()
        await queue.cancel(tag)
    finally:
        await connection.close()
        await redis.aclose()


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(get_settings(), stop)


def main() -> None:
    configure_logging(get_settings().log_level)
    asyncio.run(_main())


if __name__ == "__main__":
    main()
