"""JWT issuing, refresh-token rotation with reuse detection, and revocation.

Every login starts a token *family* (claim ``fam``) shared by every access and
refresh token rotated from it. Redis keys:

- ``jwt:used:{jti}``: a refresh token already exchanged (SET NX: the first use wins);
- ``jwt:revoked:{jti}``: one revoked token;
- ``jwt:family-revoked:{fam}``: every token of a family is revoked.

Each key lives as long as the token(s) it concerns could still be valid.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
)
from redis import Redis

from contracts.base import Viewer
from contracts.users import UserOut
from gateway import deps
from gateway.errors import register_jwt_loaders
from gateway.schemas import TokenPair
from gateway.verified_tokens import CachingJWTManager

USED_KEY = "jwt:used:{jti}"
REVOKED_KEY = "jwt:revoked:{jti}"
FAMILY_REVOKED_KEY = "jwt:family-revoked:{fam}"
FAMILY_CLAIM = "fam"
ADMIN_CLAIM = "adm"
ROLE_CLAIM = "rol"

F = TypeVar("F", bound=Callable[..., Any])


def _seconds(value: timedelta | int) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


def access_ttl() -> int:
    return _seconds(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"])


def refresh_ttl() -> int:
    return _seconds(current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])


def issue_pair(user: UserOut, family: str | None = None) -> TokenPair:
    """A new access + refresh pair for ``user``, in ``family`` (a new one by default)."""
    family = family or uuid.uuid4().hex
    identity = str(user.id)
    access = create_access_token(
        identity,
        additional_claims={FAMILY_CLAIM: family, ADMIN_CLAIM: user.is_admin, ROLE_CLAIM: user.role},
    )
    refresh = create_refresh_token(identity, additional_claims={FAMILY_CLAIM: family})
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=access_ttl())


def remaining_life(claims: dict[str, Any]) -> int:
    """Seconds until the token expires (at least 1, a valid Redis TTL)."""
    return max(1, int(claims["exp"] - time.time()))


def claim_refresh(redis: Redis, claims: dict[str, Any]) -> bool:
    """Mark a refresh token used; False when it was used before (a replay)."""
    key = USED_KEY.format(jti=claims["jti"])
    return bool(redis.set(key, "1", nx=True, ex=remaining_life(claims)))


def revoke_token(redis: Redis, claims: dict[str, Any]) -> None:
    redis.set(REVOKED_KEY.format(jti=claims["jti"]), "1", ex=remaining_life(claims))


def revoke_family(redis: Redis, family: str, ttl: int) -> None:
    """Revoke every token of a family; ``ttl`` must cover the longest-lived one."""
    redis.set(FAMILY_REVOKED_KEY.format(fam=family), "1", ex=max(1, ttl))


def is_revoked(redis: Redis, claims: dict[str, Any]) -> bool:
    family = claims.get(FAMILY_CLAIM)
    if not isinstance(family, str):
        return True  # every token we issue has a family
    keys = (REVOKED_KEY.format(jti=claims["jti"]), FAMILY_REVOKED_KEY.format(fam=family))
    return bool(redis.exists(*keys))


def current_user_id() -> int:
    return int(get_jwt_identity())


def current_user_is_admin() -> bool:
    """The ``adm`` claim of the verified access token."""
    return get_jwt().get(ADMIN_CLAIM) is True


def current_viewer() -> Viewer:
    """Who asks, as the services take it: the token's user, and whether an administrator."""
    return Viewer(user_id=current_user_id(), is_admin=current_user_is_admin())


def current_user_teaches() -> bool:
    """True for an instructor (the ``rol`` claim) or an administrator."""
    return get_jwt().get(ROLE_CLAIM) == "instructor" or current_user_is_admin()


def init_jwt(app: Flask) -> JWTManager:
    """Bind flask-jwt-extended to ``app`` with our blocklist and error format."""
    jwt = CachingJWTManager(app)
    register_jwt_loaders(jwt)
    jwt.token_in_blocklist_loader(lambda _header, claims: is_revoked(deps.redis(), claims))
    return jwt
