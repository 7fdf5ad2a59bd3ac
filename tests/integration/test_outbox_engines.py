"""The outbox's backlog and pruning on PostgreSQL and MariaDB/MySQL (time zones included)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select, update
from sqlalchemy.orm import sessionmaker

from contracts.users import UserRegistered
from mesh.outbox import add_event, backlog, outbox_table, prune_published, publish_pending
from tests.integration.engines import SERVERS, fresh_schema

TABLE = outbox_table(MetaData())
RELAYS = 3


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, TABLE.metadata, tmp_path) as factory:
        yield factory


def add(sessions: sessionmaker, n: int) -> None:
    with sessions() as session, session.begin():
        for i in range(n):
            add_event(session, TABLE, UserRegistered(user_id=i + 1))


def test_backlog_then_prune_after_the_retention(sessions: sessionmaker) -> None:
    add(sessions, 4)
    count, age = backlog(sessions, TABLE, datetime.now(UTC) + timedelta(seconds=30))
    assert count == 4 and 25 < age < 40
    published: list[Any] = []
    assert publish_pending(sessions, TABLE, published.append) == 4
    assert backlog(sessions, TABLE, datetime.now(UTC)) == (0, 0.0)
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    assert prune_published(sessions, TABLE, cutoff, batch=3) == 0  # still within retention
    with sessions() as session, session.begin():
        session.execute(update(TABLE).values(published_at=cutoff - timedelta(minutes=1)))
    add(sessions, 1)  # unpublished: never pruned
    assert prune_published(sessions, TABLE, cutoff, batch=3) == 4
    with sessions() as session:
        assert len(session.execute(select(TABLE.c.id)).all()) == 1


@pytest.mark.parametrize("engine", sorted(SERVERS))
def test_relays_running_at_once_publish_each_row_once(engine: str, tmp_path: Path) -> None:
    """Replicas' relays on one table: FOR UPDATE SKIP LOCKED hands each row to one of them."""
    with fresh_schema(engine, TABLE.metadata, tmp_path) as sessions:
        add(sessions, 250)
        published: list[tuple[str, str]] = []
        start = threading.Barrier(RELAYS)

        def relay(name: str) -> None:
            def publish(row: Any) -> None:
                published.append((row.event_id, name))
                time.sleep(0.002)  # a broker round trip: the passes overlap

            start.wait()
            while publish_pending(sessions, TABLE, publish, limit=20):
                pass

        threads = [threading.Thread(target=relay, args=(f"relay-{i}",)) for i in range(RELAYS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        ids = Counter(event_id for event_id, _ in published)
        assert len(ids) == 250 and set(ids.values()) == {1}, ids.most_common(3)
        assert len({name for _, name in published}) == RELAYS  # every relay took some rows
        assert backlog(sessions, TABLE, datetime.now(UTC)) == (0, 0.0)
