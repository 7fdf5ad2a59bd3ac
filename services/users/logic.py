"""What the users service does, as plain functions over its adapters."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from contracts.base import is_id, parse
from contracts.users import Credentials, RegisterRequest, UserOut, UserRegistered
from mesh.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
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


def to_out(user: User) -> dict[str, Any]:
    return UserOut.model_validate(user, from_attributes=True).model_dump(mode="json")


def register(
    sessions: sessionmaker,
    events: EventSink,
    cache: Cache,
    hasher: PasswordHasher,
    payload: Any,
    *,
    is_admin: bool = False,
) -> dict[str, Any]:
    """Store a new user and its ``user.registered`` event in one transaction.

    The id's cache entry is dropped too: a reset database reuses ids, and a
    cached stranger must never answer for the new user.
    """
    request = parse(RegisterRequest, payload)
    password_hash = hasher.hash(request.password)
    try:
        with sessions() as session, session.begin():
            if session.scalar(select(User.id).where(User.email == request.email)):
                raise Conflict("e-mail already registered")
            user = User(
                email=request.email,
                name=request.name,
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


def authenticate(sessions: sessionmaker, hasher: PasswordHasher, payload: Any) -> dict[str, Any]:
    """The user for these credentials; one generic failure whatever was wrong."""
    try:
        credentials = parse(Credentials, payload)
    except InvalidInput:
        raise AuthenticationFailed(BAD_CREDENTIALS) from None
    with sessions() as session:
        user = session.scalar(select(User).where(User.email == credentials.email.lower()))
    if not hasher.verify(user.password_hash if user else None, credentials.password) or not user:
        raise AuthenticationFailed(BAD_CREDENTIALS)
    if hasher.needs_rehash(user.password_hash):
        _store_hash(sessions, user.id, hasher.hash(credentials.password))
    return to_out(user)


def get_user(sessions: sessionmaker, cache: Cache, user_id: Any) -> dict[str, Any]:
    """One user by id, from the cache when it holds them (10 minutes)."""
    if not is_id(user_id):
        raise NotFound("user not found")
    cached = cache.get(cache_key(user_id))
    if cached:
        return dict(json.loads(cached))
    with sessions() as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    out = to_out(user)
    cache.set(cache_key(user_id), json.dumps(out), ex=CACHE_TTL_SECONDS)
    return out


def promote_admin(sessions: sessionmaker, cache: Cache, email: str) -> dict[str, Any]:
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
