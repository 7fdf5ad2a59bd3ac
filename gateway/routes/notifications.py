"""/api/notifications: the caller's notifications, newest first, page by page."""

from __future__ import annotations

from flask import Blueprint, Response

from contracts.notifications import ListRequest, NotificationPage
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.deps import services
from gateway.schemas import NotificationsQuery
from gateway.user_stream import EVENT_STREAM, RESUME_HEADER, ResumeQuery, respond, resume_point

bp = Blueprint("notifications", __name__, url_prefix="/api")


def page_of(user_id: int, query: NotificationsQuery) -> NotificationPage:
    """One page of ``user_id``'s notifications (404 for a ``before`` not among them)."""
    request = ListRequest(user_id=user_id, limit=query.limit, before=query.before)
    return services().notifications.list_for_user(request)


@bp.get("/notifications")
@endpoint(
    "The caller's notifications, newest first, paged",
    tag="notifications",
    auth="access",
    query=NotificationsQuery,
    response=NotificationPage,
    errors=(404,),
    description="The next (older) page: the same request with `before` = `next_before`.",
)
def list_mine(query: NotificationsQuery) -> NotificationPage:
    return page_of(current_user_id(), query)


@bp.get("/notifications/stream")
@endpoint(
    "The caller's notifications as Server-Sent Events, as they are stored",
    tag="notifications",
    auth="access",
    query=ResumeQuery,
    headers=(RESUME_HEADER,),
    media=EVENT_STREAM,
    description="Each notification as `event: notification` with its `id:`; reconnect with "
    "`Last-Event-ID` (or `?last_event_id=`) to get what was stored since. At most "
    "SSE_MAX_PER_USER open streams per user (429 beyond) and SSE_MAX_TOTAL per gateway "
    "process (503 beyond), both with Retry-After.",
)
def stream(query: ResumeQuery) -> Response:
    return respond(current_user_id(), resume_point(query))
