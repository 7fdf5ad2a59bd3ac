from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import MetaData, select, update
from sqlalchemy.orm import sessionmaker

from contracts.users import UserRegistered
from mesh.context import set_correlation_id
from mesh.metrics import TextfileCollector, TextfileWriter, metrics_dir
from mesh.outbox import (
    RelayMonitor,
    add_event,
    backlog,
    outbox_table,
    prune_published,
    publish_pending,
)
from mesh.sql import make_sessionmaker
from tests.unit.fakes import RecordingSink


class FlakyPublisher:
    """Publishes to a list; refuses the event ids it is told to."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.published: list[dict[str, Any]] = []
        self.refuse = refuse or set()

    def __call__(self, row: Any) -> None:
        if row.event_id in self.refuse:
            raise ConnectionError("broker went away")
        self.published.append({"event_id": row.event_id, "correlation_id": row.correlation_id})


@pytest.fixture
def store(tmp_path: Path) -> tuple[sessionmaker, Any]:
    table = outbox_table(MetaData())
    return make_sessionmaker(f"sqlite:///{tmp_path / 'o.db'}", table.metadata), table


def add(sessions: sessionmaker, table: Any, n: int) -> list[str]:
    events = [UserRegistered(user_id=i) for i in range(1, n + 1)]
    with sessions() as session, session.begin():
        for event in events:
            add_event(session, table, event)
    return [str(e.event_id) for e in events]


def test_rows_are_published_in_order_once(store) -> None:
    sessions, table = store
    set_correlation_id("req-1")
    ids = add(sessions, table, 3)
    set_correlation_id(None)
    publisher = FlakyPublisher()
    assert publish_pending(sessions, table, publisher) == 3
    assert publish_pending(sessions, table, publisher) == 0
    assert [p["event_id"] for p in publisher.published] == ids
    assert {p["correlation_id"] for p in publisher.published} == {"req-1"}


def test_a_failed_publish_keeps_the_row_and_stops_the_pass(store) -> None:
    sessions, table = store
    ids = add(sessions, table, 3)
    publisher = FlakyPublisher(refuse={ids[1]})
    assert publish_pending(sessions, table, publisher) == 1
    with sessions() as session:
        rows = session.execute(select(table).order_by(table.c.id)).all()
    assert rows[0].published_at is not None
    assert rows[1].published_at is None and "broker went away" in rows[1].last_error
    assert rows[2].published_at is None
    publisher.refuse.clear()
    assert publish_pending(sessions, table, publisher) == 2
    assert [p["event_id"] for p in publisher.published] == ids


def test_a_rolled_back_transaction_leaves_no_event(store) -> None:
    sessions, table = store
    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        add_event(session, table, UserRegistered(user_id=1))
        raise RuntimeError("the business write failed")
    assert publish_pending(sessions, table, FlakyPublisher()) == 0


def test_the_recording_sink_keeps_only_committed_events(store) -> None:
    """The tests' stand-in for the outbox publishes what commits, as the outbox does."""
    sessions, _table = store
    sink = RecordingSink()
    kept = UserRegistered(user_id=1)
    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        sink.add(session, UserRegistered(user_id=2))
        raise RuntimeError("the business write failed")
    with sessions() as session:
        sink.add(session, UserRegistered(user_id=3))  # never committed: closed
    with sessions() as session:
        with session.begin():
            sink.add(session, kept)
        with session.begin():
            pass  # a later transaction of the same session publishes nothing again
    assert sink.events == [kept]


def mark_published(sessions: sessionmaker, table: Any, at: datetime) -> None:
    with sessions() as session, session.begin():
        session.execute(update(table).values(published_at=at))


def test_prune_deletes_only_rows_published_before_the_cutoff_in_batches(store) -> None:
    sessions, table = store
    add(sessions, table, 5)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    mark_published(sessions, table, long_ago)
    kept = add(sessions, table, 2)  # unpublished
    cutoff = datetime.now(UTC) - timedelta(hours=24)
    assert prune_published(sessions, table, cutoff, batch=2) == 5
    with sessions() as session:
        left = session.execute(select(table.c.event_id).order_by(table.c.id)).scalars().all()
    assert left == kept
    publish_pending(sessions, table, FlakyPublisher())  # published now: inside the retention
    assert prune_published(sessions, table, cutoff, batch=2) == 0


def test_backlog_counts_unpublished_rows_and_the_oldest_age(store) -> None:
    sessions, table = store
    assert backlog(sessions, table, datetime.now(UTC)) == (0, 0.0)
    add(sessions, table, 3)
    count, age = backlog(sessions, table, datetime.now(UTC) + timedelta(minutes=10))
    assert count == 3 and 599 < age < 610
    publish_pending(sessions, table, FlakyPublisher())
    assert backlog(sessions, table, datetime.now(UTC)) == (0, 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"service": "users", "pid": str(os.getpid())})


def test_a_stuck_row_is_counted_and_logged_at_a_bounded_rate(
    store, caplog: pytest.LogCaptureFixture
) -> None:
    sessions, table = store
    ids = add(sessions, table, 2)
    registry, clock = CollectorRegistry(), Clock()
    monitor = RelayMonitor("users", registry, log_every=60, clock=clock)
    publisher = FlakyPublisher(refuse={ids[0]})
    with caplog.at_level(logging.WARNING, logger="mesh.outbox"):
        for _ in range(30):  # the relay retries every second
            publish_pending(sessions, table, publisher, on_failure=monitor.failed)
            clock.now += 1
        clock.now += 31
        publish_pending(sessions, table, publisher, on_failure=monitor.failed)
    assert sample(registry, "mesh_outbox_relay_failures_total") == 31
    stuck = [r for r in caplog.records if r.getMessage() == "outbox relay stuck: publish failed"]
    assert len(stuck) == 2  # the first failure, then one a minute later
    with sessions() as session:
        first_id = session.execute(select(table.c.id).order_by(table.c.id)).scalars().first()
    assert stuck[0].row_id == first_id and stuck[0].event_id == ids[0]
    assert stuck[1].failures_not_logged == 29
    monitor.observe(*backlog(sessions, table, datetime.now(UTC)))
    assert sample(registry, "mesh_outbox_backlog") == 2


def test_metrics_files_of_live_processes_are_merged(tmp_path: Path) -> None:
    registries = {}
    for service in ("users", "orders"):
        registries[service] = CollectorRegistry()
        RelayMonitor(service, registries[service], 60).observe(3, 12.5)
        TextfileWriter(tmp_path, f"outbox-{service}", registries[service]).write()
    folder = metrics_dir(tmp_path)
    (folder / "outbox-gone-999999999.prom").write_text("mesh_outbox_backlog 7\n")
    exposed = CollectorRegistry()
    exposed.register(TextfileCollector(folder))
    text = generate_latest(exposed).decode()
    assert text.count("# TYPE mesh_outbox_backlog gauge") == 1
    for service in ("users", "orders"):
        labels = {"service": service, "pid": str(os.getpid())}
        assert exposed.get_sample_value("mesh_outbox_backlog", labels) == 3
    assert " 7.0" not in text  # a dead process's file is skipped
    writer = TextfileWriter(tmp_path, "outbox-users", registries["users"])
    writer.remove()
    assert not writer.path.exists()


def test_a_failing_pass_is_logged_at_a_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    monitor = RelayMonitor("users", CollectorRegistry(), log_every=60, clock=clock)
    with caplog.at_level(logging.ERROR, logger="mesh.outbox"):
        for _ in range(61):  # the database is down for a minute; the relay tries each second
            try:
                raise ConnectionError("database down")
            except ConnectionError:
                monitor.pass_failed()
            clock.now += 1
    failed = [r for r in caplog.records if r.getMessage() == "outbox relay pass failed"]
    assert len(failed) == 2 and failed[0].exc_info is not None
