from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.users import UserRegistered
from mesh.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from mesh.sql import make_sessionmaker
from services.users import logic
from services.users.models import Base, User
from services.users.passwords import MEMORY_KIB, PasswordHasher
from tests.unit.fakes import FakeCache, RecordingSink

GOOD = {"email": "ann@example.com", "password": "correct-horse-9", "name": "Ann"}


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'users.db'}", Base.metadata)


def test_register_stores_the_user_and_its_event(sessions, hasher) -> None:
    sink = RecordingSink()
    user = logic.register(sessions, sink, FakeCache(), hasher, GOOD)
    assert user["email"] == "ann@example.com"
    assert "password" not in str(user)
    assert [type(e) for e in sink.events] == [UserRegistered]
    assert sink.events[0].user_id == user["id"]


def test_passwords_are_hashed_with_argon2id(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, GOOD)
    with sessions() as session:
        stored = session.query(User).one().password_hash
    assert stored.startswith(f"$argon2id$v=19$m={MEMORY_KIB},t=3,p=1$")
    assert GOOD["password"] not in stored


def test_duplicate_email_is_a_conflict_and_stores_nothing(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, GOOD)
    sink = RecordingSink()
    with pytest.raises(Conflict):
        logic.register(sessions, sink, FakeCache(), hasher, {**GOOD, "email": "ANN@example.com"})
    assert sink.events == []
    with sessions() as session:
        assert session.query(User).count() == 1


def test_invalid_input_stores_nothing(sessions, hasher) -> None:
    with pytest.raises(InvalidInput):
        logic.register(sessions, RecordingSink(), FakeCache(), hasher, {**GOOD, "email": "nope"})
    with sessions() as session:
        assert session.query(User).count() == 0


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "ann@example.com", "password": "wrong-password-1"},
        {"email": "nobody@example.com", "password": "correct-horse-9"},
        {"email": "ann@example.com"},
        "not a dict",
    ],
)
def test_authenticate_fails_the_same_way(sessions, hasher, credentials) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, GOOD)
    with pytest.raises(AuthenticationFailed) as caught:
        logic.authenticate(sessions, hasher, credentials)
    assert str(caught.value) == logic.BAD_CREDENTIALS


def test_authenticate_accepts_any_email_case(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, GOOD)
    user = logic.authenticate(
        sessions, hasher, {"email": "Ann@Example.COM", "password": GOOD["password"]}
    )
    assert user["name"] == "Ann"


def test_get_user_is_cached_and_promotion_invalidates(sessions, hasher) -> None:
    cache = FakeCache()
    user = logic.register(sessions, RecordingSink(), FakeCache(), hasher, GOOD)
    assert logic.get_user(sessions, cache, user["id"])["is_admin"] is False
    assert logic.cache_key(user["id"]) in cache.data
    logic.promote_admin(sessions, cache, "ann@example.com")
    assert logic.cache_key(user["id"]) not in cache.data
    assert logic.get_user(sessions, cache, user["id"])["is_admin"] is True


@pytest.mark.parametrize("user_id", [999, 0, -1, "1", True, None])
def test_get_user_unknown_or_malformed_id_is_not_found(sessions, user_id) -> None:
    with pytest.raises(NotFound):
        logic.get_user(sessions, FakeCache(), user_id)


def test_promote_unknown_user_is_not_found(sessions) -> None:
    with pytest.raises(NotFound):
        logic.promote_admin(sessions, FakeCache(), "ghost@example.com")


def test_register_drops_a_stale_cache_entry_for_the_new_id(sessions, hasher) -> None:
    cache = FakeCache()
    cache.set(logic.cache_key(1), '{"id": 1, "email": "old@example.com"}')
    user = logic.register(sessions, RecordingSink(), cache, hasher, GOOD)
    assert user["id"] == 1
    assert logic.get_user(sessions, cache, 1)["email"] == GOOD["email"]
