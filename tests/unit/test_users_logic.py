from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from contracts.users import Credentials, RegisterRequest, UserRegistered
from mesh.sql import make_sessionmaker
from services.users import logic
from services.users.models import Base, User
from services.users.passwords import MEMORY_KIB, PasswordHasher
from services.users.service import UsersService
from tests.unit.fakes import FakeCache, RecordingSink
from tests.unit.service_fakes import wired

GOOD = {"email": "ann@example.com", "password": "correct-horse-9", "name": "Ann"}
ANN = RegisterRequest.model_validate(GOOD)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'users.db'}", Base.metadata)


class CountingHasher(PasswordHasher):
    """Counts the hashes made: a refused payload must cost none."""

    def __init__(self) -> None:
        super().__init__()
        self.hashed = 0

    def hash(self, password: str) -> str:
        self.hashed += 1
        return super().hash(password)


@pytest.fixture
def service(sessions: sessionmaker) -> UsersService:
    """The real service class, its entrypoints called as nameko would, with wire data."""
    return wired(
        UsersService,
        context=None,
        db=sessions,
        events=RecordingSink(),
        cache=FakeCache(),
        hasher=CountingHasher(),
    )


def test_register_stores_the_user_and_its_event(sessions, hasher) -> None:
    sink = RecordingSink()
    user = logic.register(sessions, sink, FakeCache(), hasher, ANN)
    assert user.email == "ann@example.com"
    assert "password" not in str(user.model_dump())
    assert [type(e) for e in sink.events] == [UserRegistered]
    assert sink.events[0].user_id == user.id


def test_passwords_are_hashed_with_argon2id(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, ANN)
    with sessions() as session:
        stored = session.query(User).one().password_hash
    assert stored.startswith(f"$argon2id$v=19$m={MEMORY_KIB},t=3,p=1$")
    assert GOOD["password"] not in stored


def test_duplicate_email_is_a_conflict_and_stores_nothing(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, ANN)
    sink = RecordingSink()
    again = RegisterRequest.model_validate({**GOOD, "email": "ANN@example.com"})
    with pytest.raises(Conflict):
        logic.register(sessions, sink, FakeCache(), hasher, again)
    assert sink.events == []
    with sessions() as session:
        assert session.query(User).count() == 1


@pytest.mark.parametrize(
    "payload", [{**GOOD, "email": "nope"}, {**GOOD, "password": "password123"}, "not a dict"]
)
def test_the_entrypoint_refuses_invalid_input_before_hashing_or_storing(
    service, sessions, payload
) -> None:
    with pytest.raises(InvalidInput):
        service.register(payload)
    assert service.hasher.hashed == 0 and service.events.events == []
    with sessions() as session:
        assert session.query(User).count() == 0


def test_the_entrypoint_registers_and_answers_wire_data(service, sessions) -> None:
    user = service.register(GOOD)
    assert (user["email"], user["is_admin"]) == ("ann@example.com", False)
    assert isinstance(user["created_at"], str)
    assert [e.user_id for e in service.events.events] == [user["id"]]


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials(email="ann@example.com", password="wrong-password-1"),
        Credentials(email="nobody@example.com", password="correct-horse-9"),
    ],
)
def test_authenticate_fails_the_same_way(sessions, hasher, credentials) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, ANN)
    with pytest.raises(AuthenticationFailed) as caught:
        logic.authenticate(sessions, hasher, credentials)
    assert str(caught.value) == logic.BAD_CREDENTIALS


@pytest.mark.parametrize("credentials", [{"email": "ann@example.com"}, "not a dict"])
def test_malformed_credentials_are_invalid_input_at_the_entrypoint(service, credentials) -> None:
    """Refused by the contract before any lookup: the answer says nothing of the account."""
    with pytest.raises(InvalidInput):
        service.authenticate(credentials)


def test_authenticate_accepts_any_email_case(sessions, hasher) -> None:
    logic.register(sessions, RecordingSink(), FakeCache(), hasher, ANN)
    credentials = Credentials(email="Ann@Example.COM", password=GOOD["password"])
    assert logic.authenticate(sessions, hasher, credentials).name == "Ann"


def test_get_user_is_cached_and_promotion_invalidates(sessions, hasher) -> None:
    cache = FakeCache()
    user = logic.register(sessions, RecordingSink(), FakeCache(), hasher, ANN)
    assert logic.get_user(sessions, cache, user.id).is_admin is False
    assert logic.cache_key(user.id) in cache.data
    assert logic.get_user(sessions, cache, user.id) == user  # the second read, from the cache
    logic.promote_admin(sessions, cache, "ann@example.com")
    assert logic.cache_key(user.id) not in cache.data
    assert logic.get_user(sessions, cache, user.id).is_admin is True


def test_get_user_unknown_id_is_not_found(sessions) -> None:
    with pytest.raises(NotFound):
        logic.get_user(sessions, FakeCache(), 999)


@pytest.mark.parametrize("user_id", [0, -1, "1", True, None, 2**64])
def test_a_malformed_id_is_invalid_input_at_the_entrypoint(service, user_id: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.get_user(user_id)
    assert [d["field"] for d in caught.value.details] == ["user_id"]


def test_promote_unknown_user_is_not_found(sessions) -> None:
    with pytest.raises(NotFound):
        logic.promote_admin(sessions, FakeCache(), "ghost@example.com")


def test_register_drops_a_stale_cache_entry_for_the_new_id(sessions, hasher) -> None:
    cache = FakeCache()
    cache.set(logic.cache_key(1), '{"id": 1, "email": "old@example.com"}')
    user = logic.register(sessions, RecordingSink(), cache, hasher, ANN)
    assert user.id == 1
    assert logic.get_user(sessions, cache, 1).email == GOOD["email"]
