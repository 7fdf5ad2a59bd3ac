"""/api/notifications: the caller's notifications, newest first."""

from __future__ import annotations

from flask import Blueprint

from contracts.notifications import ListRequest
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.deps import services
from gateway.schemas import LimitQuery, NotificationList

bp = Blueprint("notifications", __name__, url_prefix="/api")


@bp.get("/notifications")
@endpoint(
    "The caller's notifications, newest first",
    tag="notifications",
    auth="access",
    query=LimitQuery,
    response=NotificationList,
)
def list_mine(query: LimitQuery) -> NotificationList:
    request = ListRequest(user_id=current_user_id(), limit=query.limit)
    return NotificationList(items=services().notifications.list_for_user(request))
