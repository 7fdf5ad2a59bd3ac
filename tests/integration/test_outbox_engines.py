"""The outbox's backlog and pruning on PostgreSQL and MariaDB/MySQL (time zones included)."""

from __future__ import annotations

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
