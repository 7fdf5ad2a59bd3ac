"""Notifications: RPC payloads and the e-mail actor's name."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import Field, StrictInt, StringConstraints

from contracts.base import Contract, UtcDatetime

SEND_EMAIL_ACTOR = "send_email"
EMAIL_QUEUE = "email"

# Each user's stored notifications, newest last, as a Redis Stream the gateway serves over SSE.
# An entry's field ``notification`` holds a NotificationOut as JSON; the stream keeps about
# USER_STREAM_MAXLEN entries, the window a reconnecting client can resume from.
USER_STREAM_MAXLEN = 200


def user_stream_key(user_id: int) -> str:
    """The Redis Stream of one user's notifications."""
    return f"mesh:notifications:user:{user_id}"


NotificationId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
"""A notification's id: its MongoDB ObjectId as 24 lower-case hex digits."""

EmailStatus = Literal["queued", "sent", "failed"]
"""Where a notification's e-mail is: waiting for (or between) attempts, sent, or given up."""


class ListRequest(Contract):
    """A page of a user's notifications, newest first; ``before`` continues after that one."""

    user_id: StrictInt = Field(ge=1)
    limit: StrictInt = Field(20, ge=1, le=50)
    before: NotificationId | None = None


class OrderNotificationsRequest(Contract):
    order_id: StrictInt = Field(ge=1)
    limit: StrictInt = Field(50, ge=1, le=100)


class NotificationOut(Contract):
    id: str
    event_id: str
    type: str
    user_id: int
    order_id: int | None = None
    title: str
    body: str
    created_at: UtcDatetime
    email_status: EmailStatus | None = Field(
        None, description="The e-mail's delivery: queued, sent or failed; null without e-mail."
    )
    sent_at: UtcDatetime | None = Field(None, description="When the e-mail was sent.")


class NotificationPage(Contract):
    """Notifications newest first, and the ``before`` of the next page (None on the last)."""

    items: list[NotificationOut]
    next_before: NotificationId | None = Field(
        None, description="Pass as ``before`` for the next (older) page; null on the last page."
    )


class NotificationsApi(Protocol):
    """The notifications service's RPC surface (service name ``notifications``)."""

    def list_for_user(self, request: ListRequest) -> NotificationPage:
        """A page of a user's notifications, newest first (NotFound for an unknown
        ``before``: none of this user's notifications has that id)."""
        ...

    def get_notifications(self, request: OrderNotificationsRequest) -> list[NotificationOut]:
        """An order's notifications, newest first (the caller checks who may see the order)."""
        ...
