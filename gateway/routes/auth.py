"""/api/auth: register, login, refresh (rotation), logout."""

from __future__ import annotations

from flask import Blueprint
from flask_jwt_extended import get_jwt

from contracts.errors import AuthenticationFailed, NotFound
from contracts.users import Credentials, RegisterRequest
from gateway import auth, limits
from gateway.api import endpoint
from gateway.deps import redis, services
from gateway.schemas import RegisteredUser, TokenPair

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


@bp.post("/register")
@endpoint(
    "Create an account",
    tag="auth",
    status=201,
    body=RegisterRequest,
    response=RegisteredUser,
    errors=(409,),
)
def register(body: RegisterRequest) -> RegisteredUser:
    user = services().users.register(body)
    return RegisteredUser.model_validate(user.model_dump(exclude={"is_admin"}))


@bp.post("/login")
@endpoint(
    "Exchange credentials for tokens",
    tag="auth",
    body=Credentials,
    response=TokenPair,
    errors=(401,),
)
def login(body: Credentials) -> TokenPair:
    pair = auth.issue_pair(services().users.authenticate(body))
    limits.remember_client(body.email)
    return pair


@bp.post("/refresh")
@endpoint(
    "Rotate a refresh token (send it as Bearer)",
    tag="auth",
    auth="refresh",
    response=TokenPair,
    description="Send the refresh token (not the access token) as Bearer. A replayed refresh "
    "token revokes every token of its login.",
)
def refresh() -> TokenPair:
    """Exchange a refresh token for a new pair; a replayed one revokes its whole family."""
    claims = get_jwt()
    family = claims[auth.FAMILY_CLAIM]
    try:
        user = services().users.get_user(auth.current_user_id())
    except NotFound:
        auth.revoke_family(redis(), family, auth.refresh_ttl())
        raise AuthenticationFailed("the account no longer exists") from None
    if not auth.claim_refresh(redis(), claims):
        auth.revoke_family(redis(), family, auth.refresh_ttl())
        raise AuthenticationFailed("refresh token reused: every token of this login is revoked")
    return auth.issue_pair(user, family=family)


@bp.post("/logout")
@endpoint("Revoke this login's tokens", tag="auth", auth="access", status=204)
def logout() -> None:
    """Revoke this access token and every token of its login (the refresh token too)."""
    claims = get_jwt()
    auth.revoke_token(redis(), claims)
    auth.revoke_family(redis(), claims[auth.FAMILY_CLAIM], auth.refresh_ttl())
