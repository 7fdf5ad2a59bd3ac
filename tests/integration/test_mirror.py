"""The mirror against the real broker and Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Queue
from nameko.amqp.publish import get_connection

from contracts.catalog import FieldChange, ProductUpdated
from contracts.users import UserRegistered
from mesh import mirror, topology
from mesh.cache_keys import generation_key, value_key
from mesh.settings import Settings


@pytest.fixture
def running_mirror(settings: Settings) -> Iterator[None]:
    with get_connection(settings.amqp_uri) as connection:
        topology.declare_for_publisher(connection, "users")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            loop.run_until_complete(mirror.run(settings, stop))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    time.sleep(1.0)
    yield
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()
    if failures:
        raise failures[0]


def publish(
    amqp_uri: str, body: Any, routing_key: str = "user.registered", source: str = "users"
) -> None:
    with Connection(amqp_uri) as connection:
        producer = connection.Producer(connection.channel())
        producer.publish(body, exchange=topology.event_exchange(source), routing_key=routing_key)


def received(sub: Any, seconds: float) -> list[dict[str, Any]]:
    messages, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            messages.append(json.loads(message["data"]))
    return messages


def test_each_event_reaches_redis_once(settings: Settings, running_mirror: None) -> None:
    sub = redis.Redis.from_url(settings.redis_url).pubsub()
    sub.subscribe("user.registered")
    event = UserRegistered(user_id=77).to_wire()
    publish(settings.amqp_uri, event)
    publish(settings.amqp_uri, event)  # a redelivery: same event_id
    got = received(sub, 3)
    assert [m["event_id"] for m in got] == [event["event_id"]]
    assert got[0]["user_id"] == 77


def test_a_broken_message_is_dead_lettered(settings: Settings, running_mirror: None) -> None:
    publish(settings.amqp_uri, {"no": "type"})
    deadline = time.monotonic() + 5
    with Connection(settings.amqp_uri) as connection:
        dlq = Queue(topology.MIRROR_DLQ, durable=True)(connection.channel())
        while (message := dlq.get(no_ack=True)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
    assert message is not None and message.payload == {"no": "type"}


def test_a_product_change_makes_the_gateways_cached_copy_stale(
    settings: Settings, running_mirror: None
) -> None:
    cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    cache.set(value_key("product", 9), '{"v": 1, "g": null, "data": {}}')
    event = ProductUpdated(
        product_id=9, change="updated", changes={"stock": FieldChange(old=0, new=2)}
    )
    publish(settings.amqp_uri, event.to_wire(), routing_key=event.type, source="catalog")
    deadline = time.monotonic() + 5
    while cache.exists(value_key("product", 9)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cache.exists(value_key("product", 9))
    assert cache.get(generation_key("product", 9))
