"""The mirror through a Redis outage, on a private redis-server it stops and starts.

What the mirror guarantees: an event that reaches it while Redis is down stays in its
RabbitMQ queue (nacked, requeued after a pause) and is published on its channel once Redis is
back, once (its ``mirror:seen`` mark and the publish are one script). Pub/sub itself keeps
nothing: a subscriber sees only what is published while it is subscribed, so a subscriber
that reconnects after the restart may miss what the mirror publishes in between.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection
from nameko.amqp.publish import get_connection

from contracts.users import UserRegistered
from mesh import mirror, topology
from mesh.dead_letters import waiting_messages
from mesh.settings import Settings, get_settings
from tests.faults.servers import PrivateRedis
from tests.integration.test_mirror import publish


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mirror_settings(
    settings: Settings, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("REDIS_URL", private_redis.url())
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def running_mirror(mirror_settings: Settings) -> Iterator[None]:
    with get_connection(mirror_settings.amqp_uri) as connection:
        topology.declare_for_publisher(connection, "users")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(mirror.run(mirror_settings, stop)), daemon=True
    )
    thread.start()
    time.sleep(1.0)
    yield
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def subscribed(url: str) -> Any:
    sub = redis.Redis.from_url(url).pubsub()
    sub.subscribe(UserRegistered.type)
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    return sub


def event_ids(sub: Any, seconds: float, want: int) -> list[str]:
    found: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(found) < want:
        message = sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            found.append(json.loads(message["data"])["event_id"])
    return found


def test_events_of_a_redis_outage_are_mirrored_once_it_is_back(
    mirror_settings: Settings, private_redis: PrivateRedis, running_mirror: None
) -> None:
    before = UserRegistered(user_id=1)
    sub = subscribed(private_redis.url())
    publish(mirror_settings.amqp_uri, before.to_wire())
    assert event_ids(sub, 10, 1) == [str(before.event_id)]
    sub.close()

    private_redis.stop()
    during = [UserRegistered(user_id=n) for n in (2, 3, 4)]
    for event in during:
        publish(mirror_settings.amqp_uri, event.to_wire())
    time.sleep(3)  # the mirror tries, fails and requeues meanwhile
    private_redis.start()  # empty: no persistence

    # The mirror marks an event seen and publishes it in one script: a mark is a publish.
    client = redis.Redis.from_url(private_redis.url())
    keys = [f"mirror:seen:{event.event_id}" for event in during]
    deadline = time.monotonic() + 20
    while client.exists(*keys) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.exists(*keys) == len(keys)
    with Connection(mirror_settings.amqp_uri) as connection:
        assert waiting_messages(connection, topology.MIRROR_QUEUE) == 0
