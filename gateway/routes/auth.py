"""/api/auth: register, login, refresh (rotation), logout."""

from __future__ import annotations

from flask import Blueprint, Response
from flask_jwt_extended import get_jwt, jwt_required

from contracts.base import parse
from contracts.users import Credentials, RegisterRequest, UserOut
from gateway import auth
from gateway.deps import redis, rpc
from gateway.http import from_rpc, json_body
from gateway.schemas import RegisteredUser
from mesh.errors import AuthenticationFailed, NotFound

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


@bp.post("/register")
def register() -> tuple[dict[str, object], int]:
    payload = parse(RegisterRequest, json_body())
    user = from_rpc(UserOut, rpc().call("users", "register", payload.model_dump(mode="json")))
    registered = RegisteredUser.model_validate(user.model_dump(exclude={"is_admin"}))
    return registered.model_dump(mode="json"), 201


@bp.post("/login")
def login() -> dict[str, object]:
    credentials = parse(Credentials, json_body())
    user = from_rpc(UserOut, rpc().call("users", "authenticate", credentials.model_dump()))
    return auth.issue_pair(user).model_dump()


@bp.post("/refresh")
@jwt_required(refresh=True)
def refresh() -> dict[str, object]:
    """Exchange a refresh token for a new pair; a replayed one revokes its whole family."""
    claims = get_jwt()
    family = claims[auth.FAMILY_CLAIM]
    try:
        user = from_rpc(UserOut, rpc().call("users", "get_user", auth.current_user_id()))
    except NotFound:
        auth.revoke_family(redis(), family, auth.refresh_ttl())
        raise AuthenticationFailed("the account no longer exists") from None
    if not auth.claim_refresh(redis(), claims):
        auth.revoke_family(redis(), family, auth.refresh_ttl())
        raise AuthenticationFailed("refresh token reused: every token of this login is revoked")
    return auth.issue_pair(user, family=family).model_dump()


@bp.post("/logout")
@jwt_required()
def logout() -> Response:
    """Revoke this access token and every token of its login (the refresh token too)."""
    claims = get_jwt()
    auth.revoke_token(redis(), claims)
    auth.revoke_family(redis(), claims[auth.FAMILY_CLAIM], auth.refresh_ttl())
    return Response(status=204)
