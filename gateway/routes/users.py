"""/api/users: the caller's own account, and anyone's public profile."""

from __future__ import annotations

from flask import Blueprint, Response

from contracts.users import PublicUser, UserOut
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.cache import cached_json, response_cache
from gateway.deps import services

bp = Blueprint("users", __name__, url_prefix="/api/users")


@bp.get("/me")
@endpoint("The caller's account", tag="users", auth="access", response=UserOut, errors=(404,))
def me() -> UserOut:
    return services().users.get_user(current_user_id())


@bp.get("/<id:user_id>")
@endpoint(
    "A user's public profile (cached)",
    tag="users",
    auth="access",
    response=PublicUser,
    cached=True,
)
def profile(user_id: int) -> Response:
    """A user's public profile (id and name only); cached for a few minutes (``X-Cache``)."""

    def load() -> PublicUser:
        user = services().users.get_user(user_id)
        return PublicUser(id=user.id, name=user.name)

    public, hit = response_cache().cached("user", user_id, PublicUser, load)
    return cached_json(public, hit)
