"""/api/events/stream: domain events relayed from Redis pub/sub as Server-Sent Events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, stream_with_context
from flask_jwt_extended import get_jwt
from redis import Redis
from redis.exceptions import RedisError

from contracts.errors import InvalidInput
from contracts.registry import EVENTS
from gateway.api import endpoint
from gateway.auth import current_user_id, is_revoked
from gateway.deps import redis
from gateway.schemas import EventTypes
from gateway.streams import guarded, open_slot

bp = Blueprint("events", __name__, url_prefix="/api/events")
log = logging.getLogger(__name__)

RETRY_MS = 3000


def known_types() -> list[str]:
    return [event.type for event in EVENTS]


def requested_types(raw: str | None) -> list[str]:
    """The ``?types=a,b`` filter (all known types when absent or empty); 422 on unknown."""
    known = known_types()
    wanted = [t.strip() for t in (raw or "").split(",") if t.strip()]
    unknown = [t for t in wanted if t not in known]
    if unknown:
        details = [{"field": "types", "message": f"unknown event type: {t}"} for t in unknown]
        raise InvalidInput("invalid input", details)
    return list(dict.fromkeys(wanted)) or known


def sse_message(channel: str, data: str) -> str:
    """One SSE message; a multi-line payload becomes several ``data:`` lines."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {channel}\n{lines}\n"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def token_still_valid(
    store: Redis, claims: dict[str, Any], clock: Callable[[], float] = time.time
) -> Callable[[], bool]:
    """A check that the token with ``claims`` has neither expired nor been revoked."""

    def still_valid() -> bool:
        expires = claims.get("exp")
        if expires is not None and clock() >= expires:
            return False
        return not is_revoked(store, claims)

    return still_valid


def relay(
    pubsub: Any, keepalive: float, poll: float, still_valid: Callable[[], bool]
) -> Iterator[str]:
    """Yield every published message, and a comment when quiet for ``keepalive`` s.

    The stream ends, before sending anything more, once ``still_valid()`` is false.
    """
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        last_sent = time.monotonic()
        while True:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
            if message and message.get("type") == "message":
                chunk = sse_message(_text(message["channel"]), _text(message["data"]))
            elif time.monotonic() - last_sent >= keepalive:
                chunk = ": keepalive\n\n"
            else:
                continue
            if not still_valid():
                log.info("event stream ended: its token expired or was revoked")
                return
            yield chunk
            last_sent = time.monotonic()
    except RedisError as exc:
        log.warning("event stream ended, redis failed: %r", exc)
    finally:  # also on GeneratorExit, when the client goes away
        pubsub.close()


@bp.get("/stream")
@endpoint(
    "Domain events as Server-Sent Events",
    tag="events",
    auth="admin",
    query=EventTypes,
    media="text/event-stream",
)
def stream(query: EventTypes) -> Response:
    """Admins only. ``?types=user.registered,...`` picks the channels."""
    channels = requested_types(query.types)
    slot = open_slot(current_user_id())  # 429/503 past the caps (gateway.streams)
    store = redis()
    pubsub = store.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(*channels)
    except BaseException:
        pubsub.close()
        slot.release()
        raise
    config = current_app.config
    # The token was checked once, here; the stream may outlive it (expiry, logout).
    still_valid = token_still_valid(store, dict(get_jwt()))
    body = relay(pubsub, config["SSE_KEEPALIVE_SECONDS"], config["SSE_POLL_SECONDS"], still_valid)
    response = Response(stream_with_context(guarded(slot, body)), mimetype="text/event-stream")
    response.call_on_close(pubsub.close)  # a stream never started still unsubscribes
    response.call_on_close(slot.release)  # ... and gives its slot back
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
