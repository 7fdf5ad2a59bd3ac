"""Each user's live notification stream: a Redis Stream the gateway relays over SSE."""

from __future__ import annotations

from typing import Any

import redis
from nameko.extensions import DependencyProvider

from contracts.notifications import USER_STREAM_MAXLEN, NotificationOut, user_stream_key
from mesh.clients import make_redis
from mesh.settings import get_settings

FIELD = "notification"


class UserStreams:
    """Appends notifications to their user's stream, trimmed to about USER_STREAM_MAXLEN."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def append(self, notification: NotificationOut) -> str:
        """XADD the notification as JSON (field ``notification``); the entry's id."""
        entry_id = self.client.xadd(
            user_stream_key(notification.user_id),
            {FIELD: notification.model_dump_json()},
            maxlen=USER_STREAM_MAXLEN,
            approximate=True,
        )
        return str(entry_id)


class NotificationStreams(DependencyProvider):
    """Injects :class:`UserStreams` over one Redis client, connected in ``setup``."""

    def setup(self) -> None:
        self.client = make_redis(get_settings())

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> UserStreams:
        return UserStreams(self.client)
