"""What the users service does, as plain functions over its adapters."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from contracts.errors import AuthenticationFailed, Conflict, NotFound
from contracts.users import Credentials, RegisterRequest, UserOut, UserRegistered
from mesh.outbox import EventSink
from services.users.models import User
from services.users.passwords import PasswordHasher

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 600
BAD_CREDENTIALS = "invalid e-mail or password"


class Cache(Protocol):
    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: str, ex: int | None = None) -> Any: ...
    def delete(self, *keys: str) -> Any: ...


def cache_key(user_id: int) -> str:
    return f"users:user:{user_id}"


def to_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def register(
    sessions: sessionmaker,
    events: EventSink,
    cache: Cache,
    hasher: PasswordHasher,
    request: RegisterRequest,
    *,
    is_admin: bool = False,
) -> UserOut:
    """Store a new user and its ``user.registered`` event in one transaction.

    The id's cache entry is dropped too: a reset database reuses ids, and a
    cached stranger must never answer for the new user.
    """
    password_hash = hasher.hash(request.password)
    try:
        with sessions() as session, session.begin():
            if session.scalar(select(User.id).where(User.email == request.email)):
                raise Conflict("e-mail already registered")
            user = User(
                email=request.email,
                name=request.name,
                role=request.role,
                password_hash=password_hash,
                is_admin=is_admin,
            )
            session.add(user)
            session.flush()
            events.add(session, UserRegistered(user_id=user.id))
    except IntegrityError:
        raise Conflict("e-mail already registered") from None
    cache.delete(cache_key(user.id))
    log.info("user registered", extra={"user_id": user.id})
    return to_out(user)


def authenticate(
    sessions: sessionmaker, hasher: PasswordHasher, credentials: Credentials
) -> UserOut:
    """The user for these credentials; one generic failure whatever was wrong."""
    with sessions() as session:
        user = session.scalar(select(User).where(User.email == credentials.email.lower()))
    if not hasher.verify(user.password_hash if user else None, credentials.password) or not user:
        raise AuthenticationFailed(BAD_CREDENTIALS)
    if hasher.needs_rehash(user.password_hash):
        _store_hash(sessions, user.id, hasher.hash(credentials.password))
    return to_out(user)


def get_user(sessions: sessionmaker, cache: Cache, user_id: int) -> UserOut:
    """One user by id, from the cache when it holds them (10 minutes)."""
    cached = cache.get(cache_key(user_id))
    if cached:
        return UserOut.model_validate_json(cached)
    with sessions() as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    out = to_out(user)
    cache.set(cache_key(user_id), out.model_dump_json(), ex=CACHE_TTL_SECONDS)
    return out


def get_users(sessions: sessionmaker, user_ids: list[int]) -> list[UserOut]:
    """The users of these ids that exist, in the order asked, in one query."""
    if not user_ids:
        return []
    with sessions() as session:
        found = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    return [to_out(found[i]) for i in dict.fromkeys(user_ids) if i in found]


def promote_admin(sessions: sessionmaker, cache: Cache, email: str) -> UserOut:
    """Make an existing user an admin."""
    with sessions() as session, session.begin():
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise NotFound("user not found")
        user.is_admin = True
    cache.delete(cache_key(user.id))
    log.info("user promoted to admin", extra={"user_id": user.id})
    return to_out(user)


def _store_hash(sessions: sessionmaker, user_id: int, password_hash: str) -> None:
    with sessions() as session, session.begin():
        user = session.get(User, user_id)
        if user is not None:
            user.password_hash = password_hash
