"""The users service's SQL against the production engines: PostgreSQL and MariaDB/MySQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from mesh.errors import AuthenticationFailed, Conflict
from mesh.outbox import OutboxHandle, publish_pending
from mesh.sql import make_sessionmaker
from services.users import logic
from services.users.models import Base, outbox
from services.users.passwords import PasswordHasher
from tests.conftest import require
from tests.unit.fakes import FakeCache, RecordingSink

ENGINES = {
    "postgresql": os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
GOOD = {"email": "sql@example.com", "password": "correct-horse-9", "name": "Sql"}


def reachable(url: str) -> bool:
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.fixture(params=sorted(ENGINES))
def sessions(request: pytest.FixtureRequest) -> Iterator[sessionmaker]:
    url = ENGINES[request.param]
    require(request.param, lambda: reachable(url))
    factory = make_sessionmaker(url, Base.metadata)
    engine = factory.kw["bind"]
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield factory
    Base.metadata.drop_all(engine)
    engine.dispose()


def test_register_conflict_and_login(sessions: sessionmaker) -> None:
    hasher = PasswordHasher()
    sink = RecordingSink()
    user = logic.register(sessions, sink, FakeCache(), hasher, GOOD)
    with pytest.raises(Conflict):
        logic.register(sessions, sink, FakeCache(), hasher, GOOD)
    assert (
        logic.authenticate(
            sessions, hasher, {"email": GOOD["email"], "password": GOOD["password"]}
        )["id"]
        == user["id"]
    )
    with pytest.raises(AuthenticationFailed):
        logic.authenticate(
            sessions, hasher, {"email": GOOD["email"], "password": "wrong-password-1"}
        )


def test_two_relays_never_publish_the_same_row(sessions: sessionmaker) -> None:
    """FOR UPDATE SKIP LOCKED: a second relay skips the rows the first one holds."""
    events = OutboxHandle(outbox, on_commit=lambda _session: None)
    logic.register(sessions, events, FakeCache(), PasswordHasher(), GOOD)
    published: list[str] = []

    def first_relay(row: Any) -> None:
        second_pass = publish_pending(sessions, outbox, lambda r: published.append(r.event_id))
        assert second_pass == 0, "the second relay took a row the first one holds"
        published.append(row.event_id)

    assert publish_pending(sessions, outbox, first_relay) == 1
    assert len(published) == 1
