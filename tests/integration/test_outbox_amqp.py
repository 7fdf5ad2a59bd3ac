"""The outbox relay against the real broker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar

from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import get_connection
from sqlalchemy import MetaData, select

from contracts.base import Event
from contracts.users import UserRegistered
from mesh import topology
from mesh.context import set_correlation_id
from mesh.outbox import AmqpEventPublisher, add_event, outbox_table, publish_pending
from mesh.settings import Settings
from mesh.sql import make_sessionmaker


def make_store(tmp_path: Path) -> tuple[Any, Any]:
    table = outbox_table(MetaData())
    return make_sessionmaker(f"sqlite:///{tmp_path / 'outbox.db'}", table.metadata), table


def store(sessions: Any, table: Any, event: Event) -> None:
    with sessions() as session, session.begin():
        add_event(session, table, event)


def take(amqp_uri: str, queue: Queue) -> Any:
    with Connection(amqp_uri) as connection:
        return queue(connection.channel()).get(no_ack=True)


def test_a_stored_event_waits_for_a_consumer_that_never_started(
    settings: Settings, tmp_path: Path
) -> None:
    sessions, table = make_store(tmp_path)
    queue = topology.handler_queue(
        "users", "user.registered", "notifications", "on_user_registered"
    )
    with get_connection(settings.amqp_uri) as connection:
        topology.declare_for_publisher(connection, "users")
        queue(connection.default_channel).purge()
        topology.mirror_queue()(connection.default_channel).purge()
    set_correlation_id("corr-42")
    event = UserRegistered(user_id=42)
    store(sessions, table, event)
    set_correlation_id(None)
    # The "crash": nothing was published at commit time. The relay's next pass finds the row.
    assert publish_pending(sessions, table, AmqpEventPublisher(settings.amqp_uri)) == 1
    message = take(settings.amqp_uri, queue)
    assert message is not None, "the notifications queue did not keep the event"
    assert message.payload["event_id"] == str(event.event_id)
    assert message.properties["message_id"] == str(event.event_id)
    assert message.headers["nameko.correlation_id"] == "corr-42"
    assert take(settings.amqp_uri, topology.mirror_queue()).payload["user_id"] == 42


class GhostHappened(Event):
    type: ClassVar[str] = "ghost.happened"
    source: ClassVar[str] = f"ghost{uuid.uuid4().hex[:6]}"


def test_an_unroutable_event_stays_pending_until_it_can_be_routed(
    settings: Settings, tmp_path: Path
) -> None:
    sessions, table = make_store(tmp_path)
    store(sessions, table, GhostHappened())
    publish = AmqpEventPublisher(settings.amqp_uri)

    assert publish_pending(sessions, table, publish) == 0  # no exchange at all
    exchange = Exchange(f"{GhostHappened.source}.events", type="topic", durable=True)
    queue = Queue(f"{GhostHappened.source}-q", exchange=exchange, routing_key="#", durable=True)
    with Connection(settings.amqp_uri) as connection:
        exchange(connection.channel()).declare()
    assert publish_pending(sessions, table, publish) == 0  # exchange, but no queue: NO_ROUTE
    with sessions() as session:
        row = session.execute(select(table)).one()
    assert row.published_at is None and row.attempts == 2 and row.last_error

    with Connection(settings.amqp_uri) as connection:
        queue(connection.channel()).declare()
    assert publish_pending(sessions, table, publish) == 1
    assert take(settings.amqp_uri, queue) is not None
