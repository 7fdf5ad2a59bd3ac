"""Notifications: RPC payloads and the e-mail actor's name."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field, StrictInt

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


class ListRequest(Contract):
    user_id: StrictInt = Field(ge=1)
    limit: StrictInt = Field(20, ge=1, le=50)


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


class NotificationsApi(Protocol):
    """The notifications service's RPC surface (service name ``notifications``)."""

    def list_for_user(self, request: ListRequest) -> list[NotificationOut]:
        """A user's notifications, newest first."""
        ...

    def get_notifications(self, request: OrderNotificationsRequest) -> list[NotificationOut]:
        """An order's notifications, newest first (the caller checks who may see the order)."""
        ...
