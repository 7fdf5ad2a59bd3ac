"""The transactional outbox: an event is stored with the data it describes, then published.

A crash between the commit and the publish loses nothing: the relay finds the
row on its next pass. A crash between the publish and marking the row may
publish it twice, which consumers absorb because they are idempotent by event_id.

A row that cannot be published holds back the rows after it; :class:`RelayMonitor` makes
that visible (metrics, a rate-limited log line). Published rows are pruned after
``OUTBOX_RETENTION_HOURS``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from nameko.amqp.publish import Publisher, get_connection
from nameko.extensions import DependencyProvider
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Insert, Select, Update

from contracts.base import Event
from mesh import topology, tracing
from mesh.context import CORRELATION_KEY, get_correlation_id
from mesh.faults import Faults
from mesh.metrics import TextfileWriter
from mesh.settings import get_settings
from mesh.sql import make_sessionmaker

log = logging.getLogger(__name__)

OBSERVE_SECONDS = 5.0  # how often the relay measures its backlog and writes its metrics
PRUNE_SECONDS = 300.0  # how often it deletes published rows past OUTBOX_RETENTION_HOURS

PublishFn = Callable[[Row[Any]], None]
FailureFn = Callable[[Row[Any], Exception], None]


RELAY_BATCH = 100
"""Rows one relay pass publishes at most."""


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
        Column("traceparent", String(55)),  # W3C, with tracing on (mesh.tracing)
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), index=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text),
    )


def add_event(session: Session, table: Table, event: Event) -> None:
    """Store ``event`` in the caller's transaction; it is published only if that commits."""
    session.execute(
        _insert(table),
        {
            "event_id": str(event.event_id),
            "event_type": event.type,
            "source": event.source,
            "payload": json.dumps(event.to_wire()),
            "correlation_id": get_correlation_id(),
            "traceparent": tracing.traceparent(),
            "created_at": datetime.now(UTC),
            "attempts": 0,
        },
    )


# The statements of every order's path are built once per table, their values bound at each
# execution: building a statement and computing its cache key cost SQLAlchemy more than
# running it on SQLite (about a third of each insert and update here).


@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.cache
def _pending(table: Table, limit: int) -> Select[Any]:
    """Unpublished rows, oldest first, claimed where the engine has row locks."""
    return (
        select(table)
        .where(table.c.published_at.is_(None))
        .order_by(table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


@functools.cache
def _mark_published(table: Table) -> Update:
    """Run with one set of values per published row (executemany)."""
    return (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(published_at=bindparam("at"), attempts=bindparam("tries"))
    )


def publish_pending(
    sessions: sessionmaker,
    table: Table,
    publish: PublishFn,
    limit: int = RELAY_BATCH,
    on_failure: FailureFn | None = None,
) -> int:
    """Publish unpublished rows oldest first; return how many were published.

    A row whose publish fails keeps its place and records the error; the pass stops
    there so that events leave in commit order. Where the engine has row locks, rows are
    claimed with FOR UPDATE SKIP LOCKED for the whole pass, so relays in several processes
    never publish the same row. SQLite locks the whole file for a writer, and its busy wait
    blocks the eventlet hub: there, no lock is held while publishing, and the marks are
    written afterwards in a short transaction of their own. ``on_failure`` hears of the
    row that stopped the pass.
    """
    with sessions() as session, session.begin():
        row_locks = session.get_bind().dialect.name != "sqlite"
        rows = session.execute(_pending(table, limit)).all()
        if row_locks:
            return _publish_and_mark(session, table, rows, publish, on_failure)
    with sessions() as session, session.begin():
        return _publish_and_mark(session, table, rows, publish, on_failure)


def _publish_and_mark(
    session: Session,
    table: Table,
    rows: Sequence[Row[Any]],
    publish: PublishFn,
    on_failure: FailureFn | None,
) -> int:
    """Publish in order, stopping at the first failure; then write every mark at once."""
    published: list[Row[Any]] = []
    failure: tuple[Row[Any], Exception] | None = None
    for row in rows:
        try:
            publish(row)
        except Exception as exc:
            failure = (row, exc)
            if on_failure is not None:
                on_failure(row, exc)
            break
        published.append(row)
    now = datetime.now(UTC)
    if published:
        marks = [{"row_id": row.id, "at": now, "tries": row.attempts + 1} for row in published]
        session.execute(_mark_published(table), marks)
    if failure is not None:
        failed, error = failure
        session.execute(
            update(table)
            .where(table.c.id == failed.id)
            .values(attempts=failed.attempts + 1, last_error=repr(error)[:2000])
        )
    return len(published)


def prune_published(sessions: sessionmaker, table: Table, before: datetime, batch: int) -> int:
    """Delete rows published before ``before``, ``batch`` at a time (short transactions that
    never hold up the relay or a writer for long); return how many went."""
    pruned = 0
    while True:
        with sessions() as session, session.begin():
            ids = (
                session.execute(
                    select(table.c.id)
                    .where(table.c.published_at.is_not(None), table.c.published_at < before)
                    .order_by(table.c.id)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if ids:
                session.execute(delete(table).where(table.c.id.in_(ids)))
        pruned += len(ids)
        if len(ids) < batch:
            return pruned


def backlog(sessions: sessionmaker, table: Table, now: datetime) -> tuple[int, float]:
    """Unpublished rows, and the age in seconds of the oldest (0 when there is none)."""
    with sessions() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(table.c.created_at)).where(table.c.published_at.is_(None))
        ).one()
    if oldest is None:
        return int(count), 0.0
    if oldest.tzinfo is None:  # SQLite keeps no zone; every stamp here is UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max((now - oldest).total_seconds(), 0.0)


class RelayMonitor:
    """Makes a stuck outbox visible: Prometheus metrics labelled by service, and a log
    line naming the stuck row, at most once per ``log_every`` seconds for the same row."""

    def __init__(
        self,
        service: str,
        registry: CollectorRegistry,
        log_every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service, self.log_every, self.clock = service, log_every, clock
        labels = {"service": service, "pid": str(os.getpid())}
        names = list(labels)
        self.failures = Counter(
            "mesh_outbox_relay_failures",
            "Outbox rows whose publish failed (the relay retries them in order).",
            names,
            registry=registry,
        ).labels(**labels)
        self.pending = Gauge(
            "mesh_outbox_backlog", "Outbox rows not yet published.", names, registry=registry
        ).labels(**labels)
        self.oldest = Gauge(
            "mesh_outbox_oldest_unpublished_seconds",
            "Age of the oldest outbox row not yet published (0: none).",
            names,
            registry=registry,
        ).labels(**labels)
        self.pruned = Counter(
            "mesh_outbox_pruned", "Published outbox rows deleted.", names, registry=registry
        ).labels(**labels)
        self._logged: tuple[int, float] | None = None  # (row id, when)
        self._suppressed = 0
        self._pass_logged: float | None = None

    def failed(self, row: Row[Any], exc: Exception) -> None:
        """Count a failed publish; log it unless this row was logged within ``log_every``."""
        self.failures.inc()
        now = self.clock()
        if self._logged and self._logged[0] == row.id and now - self._logged[1] < self.log_every:
            self._suppressed += 1
            return
        log.warning(
            "outbox relay stuck: publish failed",
            extra={
                "service": self.service,
                "row_id": row.id,
                "event_id": row.event_id,
                "event_type": row.event_type,
                "attempts": row.attempts + 1,
                "failures_not_logged": self._suppressed,
                "error": repr(exc),
            },
        )
        self._logged, self._suppressed = (row.id, now), 0

    def pass_failed(self) -> None:
        """Log the exception being handled (a pass that could not read the outbox: its
        database down), at most once per ``log_every`` seconds."""
        now = self.clock()
        if self._pass_logged is not None and now - self._pass_logged < self.log_every:
            return
        self._pass_logged = now
        log.exception("outbox relay pass failed", extra={"service": self.service})

    def observe(self, pending: int, oldest_seconds: float) -> None:
        self.pending.set(pending)
        self.oldest.set(oldest_seconds)


class AmqpEventPublisher:
    """Publishes outbox rows as nameko events, with confirms and mandatory routing."""

    def __init__(self, amqp_uri: str) -> None:
        self.publisher = Publisher(amqp_uri, use_confirms=True, mandatory=True)

    def __call__(self, row: Row[Any]) -> None:
        headers: dict[str, Any] = {"nameko.call_id_stack": [f"outbox.{row.event_id}"]}
        if row.correlation_id:
            headers[f"nameko.{CORRELATION_KEY}"] = row.correlation_id
        with tracing.span(f"publish {row.event_type}", "producer", row.traceparent):
            tracing.inject(headers, f"nameko.{tracing.TRACEPARENT}")
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
        self.faults = Faults.from_spec(settings.mesh_faults, settings.mesh_var_dir)
        registry = CollectorRegistry()
        self.monitor = RelayMonitor(self.service, registry, settings.outbox_stuck_log_seconds)
        self.metrics_file = TextfileWriter(
            settings.mesh_var_dir, f"outbox-{self.service}", registry
        )
        self.retention = timedelta(hours=settings.outbox_retention_hours)
        self.prune_batch = settings.outbox_prune_batch
        self._next_observe = self._next_prune = 0.0
        with get_connection(settings.amqp_uri) as connection:
            topology.declare_for_publisher(connection, self.service)

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._relay, identifier="outbox.relay")

    def stop(self) -> None:
        self._running = False
        self.wake()
        self.sessions.kw["bind"].dispose()
        self.metrics_file.remove()

    def kill(self) -> None:
        self.stop()

    def wake(self) -> None:
        with contextlib.suppress(queue.Full):
            self._wakeups.put_nowait(None)

    def get_dependency(self, worker_ctx: Any) -> OutboxHandle:
        return OutboxHandle(self.table, self._on_commit)

    def _on_commit(self, _session: Session) -> None:
        self.faults.hit(f"{self.service}.after_commit")
        self.wake()

    def _relay(self) -> None:
        while self._running:
            try:
                # A short pass saw every row there was; a commit since has woken us again.
                while (
                    publish_pending(
                        self.sessions, self.table, self.publish, RELAY_BATCH, self.monitor.failed
                    )
                    == RELAY_BATCH
                ):
                    pass
                self._upkeep(time.monotonic())
            except Exception:
                self.monitor.pass_failed()
            with contextlib.suppress(queue.Empty):
                self._wakeups.get(timeout=self.poll_seconds)

    def _upkeep(self, now: float) -> None:
        """Between passes, each at its own pace: prune published rows past their retention;
        measure the backlog and write the metrics file."""
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_SECONDS
            before = datetime.now(UTC) - self.retention
            self.monitor.pruned.inc(
                prune_published(self.sessions, self.table, before, self.prune_batch)
            )
        if now >= self._next_observe:
            self._next_observe = now + OBSERVE_SECONDS
            self.monitor.observe(*backlog(self.sessions, self.table, datetime.now(UTC)))
            self.metrics_file.write()
