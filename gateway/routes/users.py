"""/api/users: the caller's own account, anyone's public profile, and (admins) their orders
and notifications."""

from __future__ import annotations

from flask import Blueprint, Response

from contracts.notifications import NotificationPage
from contracts.orders import OrderPage, OrderQuery
from contracts.users import PublicUser, UserOut
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.cache import cached_json, response_cache
from gateway.deps import services
from gateway.routes.notifications import page_of
from gateway.schemas import NotificationsQuery

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


@bp.get("/<id:user_id>/notifications")
@endpoint(
    "One user's notifications, newest first, paged (administrators only)",
    tag="users",
    auth="admin",
    query=NotificationsQuery,
    response=NotificationPage,
    errors=(404,),
    description="The next (older) page: the same request with `before` = `next_before`.",
)
def notifications_of(user_id: int, query: NotificationsQuery) -> NotificationPage:
    services().users.get_user(user_id)  # 404 for an unknown user
    return page_of(user_id, query)


@bp.get("/<id:user_id>/orders")
@endpoint(
    "A user's orders, newest first (administrators)",
    tag="users",
    auth="admin",
    query=OrderQuery,
    response=OrderPage,
    errors=(404,),
)
def orders(user_id: int, query: OrderQuery) -> OrderPage:
    """One user's orders, newest first, a page at a time; 404 for a user that does not exist."""
    services().users.get_user(user_id)
    return services().orders.list_orders(user_id, query)
