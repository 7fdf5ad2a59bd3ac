"""A failed event whose parking fails too is requeued, never acked and lost.

The flaky service's handler fails an event's first attempt. Its retry queue is deleted first,
so the handler's publish there (``mandatory``, with confirms) comes back unroutable: the
message must go back on its queue, and its second delivery succeeds.
"""

from __future__ import annotations

import pytest
import redis
from kombu import Connection

from contracts.users import UserRegistered
from mesh import topology
from mesh.settings import Settings
from tests.integration.test_reliable_events import (  # noqa: F401  (flaky_service: a fixture)
    QUEUE,
    declared,
    flaky_service,
    publish,
    wait_for,
)


@pytest.mark.usefixtures("flaky_service")
def test_an_event_whose_parking_fails_is_requeued(settings: Settings) -> None:
    retry = topology.retry_queue(QUEUE)
    with Connection(settings.amqp_uri) as connection:
        retry(connection.channel()).delete()
    assert declared(settings.amqp_uri, retry.name) is None
    try:
        cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        event = UserRegistered(user_id=1)
        publish(settings.amqp_uri, event.to_wire())
        done = wait_for(lambda: cache.get(f"flaky:done:{event.event_id}"), 20, "the requeued event")
        assert done == "2"  # the first attempt failed and was redelivered, not parked
        assert declared(settings.amqp_uri, retry.name) is None  # so it never went there
    finally:
        with Connection(settings.amqp_uri) as connection:
            retry(connection.channel()).declare()
