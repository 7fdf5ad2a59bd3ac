"""/api/users: the caller's own account, and anyone's public profile."""

from __future__ import annotations

from flask import Blueprint, Response
from flask_jwt_extended import jwt_required

from contracts.users import PublicUser, UserOut
from gateway.auth import current_user_id
from gateway.cache import cached_json, response_cache
from gateway.deps import rpc
from gateway.http import from_rpc

bp = Blueprint("users", __name__, url_prefix="/api/users")


@bp.get("/me")
@jwt_required()
def me() -> dict[str, object]:
    user = from_rpc(UserOut, rpc().call("users", "get_user", current_user_id()))
    return user.model_dump(mode="json")


@bp.get("/<id:user_id>")
@jwt_required()
def profile(user_id: int) -> Response:
    """A user's public profile (id and name only); cached for a few minutes (``X-Cache``)."""

    def load() -> PublicUser:
        user = from_rpc(UserOut, rpc().call("users", "get_user", user_id))
        return PublicUser(id=user.id, name=user.name)

    public, hit = response_cache().cached("user", user_id, PublicUser, load)
    return cached_json(public, hit)
