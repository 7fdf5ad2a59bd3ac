"""The transactional outbox: an event is stored with the data it describes, then published.

A crash between the commit and the publish loses nothing: the relay finds the
row on its next pass. A crash between the publish and marking the row may
publish it twice, which consumers absorb because they are idempotent by event_id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from nameko.amqp.publish import Publisher, get_connection
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Event
from mesh import topology
from mesh.context import CORRELATION_KEY, get_correlation_id
from mesh.settings import get_settings
from mesh.sql import make_sessionmaker

log = logging.getLogger(__name__)

PublishFn = Callable[[Row[Any]], None]


class EventSink(Protocol):
    """Where logic puts the events of a transaction (the outbox, or a fake in tests)."""

    def add(self, session: Session, event: Event) -> None: ...


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table inside a service's own database."""
    return Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("source", String(50), nullable=False),
        Column("payload", Text, nullable=False),
        Column("correlation_id", String(64)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), index=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text),
    )


def add_event(session: Session, table: Table, event: Event) -> None:
    """Store ``event`` in the caller's transaction; it is published only if that commits."""
    session.execute(
        insert(table).values(
            event_id=str(event.event_id),
            event_type=event.type,
            source=event.source,
            payload=json.dumps(event.to_wire()),
            correlation_id=get_correlation_id(),
            created_at=datetime.now(UTC),
            attempts=0,
        )
    )


def publish_pending(
    sessions: sessionmaker, table: Table, publish: PublishFn, limit: int = 100
) -> int:
    """Publish unpublished rows oldest first; return how many were published.

    A row whose publish fails keeps its place and records the error; the pass stops
    there so that events leave in commit order. Where the engine has row locks, rows are
    claimed with FOR UPDATE SKIP LOCKED for the whole pass, so relays in several processes
    never publish the same row. SQLite locks the whole file for a writer, and its busy wait
    blocks the eventlet hub: there, no lock is held while publishing, and the marks are
    written afterwards in a short transaction of their own.
    """
    with sessions() as session, session.begin():
        row_locks = session.get_bind().dialect.name != "sqlite"
        rows = session.execute(
            select(table)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if row_locks:
            return _publish_and_mark(session, table, rows, publish)
    with sessions() as session, session.begin():
        return _publish_and_mark(session, table, rows, publish)


def _publish_and_mark(
    session: Session, table: Table, rows: Sequence[Row[Any]], publish: PublishFn
) -> int:
    """Publish in order, stopping at the first failure; then write every mark at once."""
    published: list[Row[Any]] = []
    failure: tuple[Row[Any], Exception] | None = None
    for row in rows:
        try:
            publish(row)
        except Exception as exc:
            log.warning(
                "outbox publish failed", extra={"event_id": row.event_id, "error": repr(exc)}
            )
            failure = (row, exc)
            break
        published.append(row)
    now = datetime.now(UTC)
    for row in published:
        _mark(session, table, row.id, published_at=now, attempts=row.attempts + 1)
    if failure is not None:
        failed, error = failure
        _mark(
            session, table, failed.id, attempts=failed.attempts + 1, last_error=repr(error)[:2000]
        )
    return len(published)


def _mark(session: Session, table: Table, row_id: int, **values: Any) -> None:
    session.execute(update(table).where(table.c.id == row_id).values(**values))


class AmqpEventPublisher:
    """Publishes outbox rows as nameko events, with confirms and mandatory routing."""

    def __init__(self, amqp_uri: str) -> None:
        self.publisher = Publisher(amqp_uri, use_confirms=True, mandatory=True)

    def __call__(self, row: Row[Any]) -> None:
        headers = {"nameko.call_id_stack": [f"outbox.{row.event_id}"]}
        if row.correlation_id:
            headers[f"nameko.{CORRELATION_KEY}"] = row.correlation_id
        self.publisher.publish(
            json.loads(row.payload),
            exchange=topology.event_exchange(row.source),
            routing_key=row.event_type,
            extra_headers=headers,
            message_id=row.event_id,
        )


class OutboxHandle:
    """What a worker sees: ``add(session, event)``; the relay wakes when the session commits."""

    def __init__(self, table: Table, on_commit: Callable[[Session], None]) -> None:
        self.table = table
        self._on_commit = on_commit

    def add(self, session: Session, event: Event) -> None:
        add_event(session, self.table, event)
        if not sa_event.contains(session, "after_commit", self._on_commit):
            sa_event.listen(session, "after_commit", self._on_commit)


class Outbox(DependencyProvider):
    """Nameko provider: stores events with the worker's data and relays them to RabbitMQ."""

    def __init__(self, service: str, table: Table) -> None:
        self.service = service
        self.table = table
        self._wakeups: queue.Queue[None] = queue.Queue(maxsize=1)
        self._running = False

    def setup(self) -> None:
        settings = get_settings()
        self.poll_seconds = settings.outbox_poll_seconds
        self.sessions = make_sessionmaker(settings.sql_url(self.service))  # Database migrates
        self.publish: PublishFn = AmqpEventPublisher(settings.amqp_uri)
        with get_connection(settings.amqp_uri) as connection:
            topology.declare_for_publisher(connection, self.service)

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._relay, identifier="outbox.relay")

    def stop(self) -> None:
        self._running = False
        self.wake()
        self.sessions.kw["bind"].dispose()

    def kill(self) -> None:
        self.stop()

    def wake(self) -> None:
        with contextlib.suppress(queue.Full):
            self._wakeups.put_nowait(None)

    def get_dependency(self, worker_ctx: Any) -> OutboxHandle:
        return OutboxHandle(self.table, self._on_commit)

    def _on_commit(self, _session: Session) -> None:
        self.wake()

    def _relay(self) -> None:
        while self._running:
            try:
                while publish_pending(self.sessions, self.table, self.publish):
                    pass
            except Exception:
                log.exception("outbox relay pass failed")
            with contextlib.suppress(queue.Empty):
                self._wakeups.get(timeout=self.poll_seconds)
