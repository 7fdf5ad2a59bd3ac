from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.orm import sessionmaker

from contracts.users import UserRegistered
from mesh.context import set_correlation_id
from mesh.outbox import add_event, outbox_table, publish_pending
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
