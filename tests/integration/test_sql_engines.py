"""The users service's SQL against the production engines: PostgreSQL and MariaDB/MySQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.errors import AuthenticationFailed, Conflict
from contracts.users import Credentials, RegisterRequest
from mesh.outbox import OutboxHandle, publish_pending
from services.users import logic
from services.users.models import Base, outbox
from services.users.passwords import PasswordHasher
from tests.integration.engines import SERVERS, fresh_schema
from tests.unit.fakes import FakeCache, RecordingSink

GOOD = RegisterRequest(email="sql@example.com", password="correct-horse-9", name="Sql")


@pytest.fixture(params=sorted(SERVERS))
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, Base.metadata, tmp_path) as factory:
        yield factory


def test_register_conflict_and_login(sessions: sessionmaker) -> None:
    hasher = PasswordHasher()
    sink = RecordingSink()
    user = logic.register(sessions, sink, FakeCache(), hasher, GOOD)
    with pytest.raises(Conflict):
        logic.register(sessions, sink, FakeCache(), hasher, GOOD)
    credentials = Credentials(email=GOOD.email, password=GOOD.password)
    assert logic.authenticate(sessions, hasher, credentials).id == user.id
    wrong = Credentials(email=GOOD.email, password="wrong-password-1")
    with pytest.raises(AuthenticationFailed):
        logic.authenticate(sessions, hasher, wrong)


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
