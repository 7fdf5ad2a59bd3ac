"""GET /api/notifications/stream: one user's notifications as Server-Sent Events.

The notifications service appends each notification it stores to its user's Redis Stream
(``contracts.notifications.user_stream_key``, about ``USER_STREAM_MAXLEN`` entries). The view
reads that one key, so a user never sees another's. Each entry becomes

    id: <the entry's id>
    event: notification
    data: <NotificationOut as JSON>

A client that reconnects with ``Last-Event-ID`` (or ``?last_event_id=``) first gets every
entry after that id still in the stream, then the live ones. Without it the stream starts
after the newest entry (only new notifications); the first message sets that point as the
event id, so even a client that saw nothing resumes without a gap. Comments keep the
connection alive; the stream ends once the token has expired or been revoked.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, request, stream_with_context
from flask_jwt_extended import get_jwt
from pydantic import Field, ValidationError
from redis import Redis
from redis.exceptions import RedisError

from contracts.base import Contract
from contracts.errors import field_error
from contracts.notifications import USER_STREAM_MAXLEN, NotificationOut, user_stream_key
from gateway.api import Header
from gateway.deps import redis
from gateway.routes.events import RETRY_MS, sse_message, token_still_valid
from gateway.streams import guarded, open_slot

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
FIELD = "notification"
EVENT = "notification"
ENTRY_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"
_ENTRY_ID = re.compile(ENTRY_ID)
READ_COUNT = 100
LAST_EVENT_ID = "Last-Event-ID"

Entry = tuple[str, dict[str, str]]


class ResumeQuery(Contract):
    """``?last_event_id=``: resume after this entry (the Last-Event-ID header wins)."""

    last_event_id: str | None = Field(
        None,
        pattern=ENTRY_ID,
        description="Resume after this event id, as the Last-Event-ID header does.",
    )


RESUME_HEADER = Header(
    LAST_EVENT_ID,
    "Resume after this event id (an EventSource sends it when it reconnects).",
    {"type": "string", "pattern": ENTRY_ID},
)


def resume_point(query: ResumeQuery) -> str | None:
    """The id to resume after: the Last-Event-ID header, else the query; 422 if malformed."""
    header = request.headers.get(LAST_EVENT_ID)
    if header is None:
        return query.last_event_id
    if not _ENTRY_ID.fullmatch(header.strip()):
        raise field_error(LAST_EVENT_ID, "must be an event id of this stream, like 1700000000000-0")
    return header.strip()


def newest_id(store: Redis, key: str) -> str:
    """The id of the stream's newest entry ("0-0" when it is empty)."""
    newest: Any = store.xrevrange(key, count=1)
    return str(newest[0][0]) if newest else "0-0"


class UserStream:
    """Reads one user's notification stream after ``cursor`` and yields SSE messages."""

    def __init__(
        self,
        store: Redis,
        user_id: int,
        cursor: str,
        *,
        backlog: bool,
        keepalive: float,
        poll: float,
        still_valid: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.key = user_stream_key(user_id)
        self.cursor = cursor
        self.backlog = backlog
        self.keepalive = keepalive
        self.poll = poll
        self.still_valid = still_valid
        self.clock = clock

    def events(self) -> Iterator[str]:
        """The preamble, the backlog after the cursor, then each new entry; a comment when
        quiet for ``keepalive`` s. Ends once ``still_valid()`` is false, or Redis fails."""
        try:
            yield f"retry: {RETRY_MS}\nid: {self.cursor}\n: connected\n\n"
            pending = self._backlog() if self.backlog else []
            last_sent = self.clock()
            while True:
                if not self.still_valid():
                    log.info("notification stream ended: its token expired or was revoked")
                    return
                chunks = [m for m in map(self._message, pending) if m is not None]
                if chunks:
                    yield "".join(chunks)
                    last_sent = self.clock()
                elif self.clock() - last_sent >= self.keepalive:
                    yield ": keepalive\n\n"
                    last_sent = self.clock()
                pending = self._read()
        except RedisError as exc:
            log.warning("notification stream ended, redis failed: %r", exc)

    def _backlog(self) -> list[Entry]:
        """The entries after the cursor still in the stream: about its MAXLEN at most (if
        trimming lags, the reads after it bring the rest)."""
        found: Any = self.store.xrange(self.key, min=f"({self.cursor}", count=USER_STREAM_MAXLEN)
        return [(str(entry_id), fields) for entry_id, fields in found or []]

    def _read(self) -> list[Entry]:
        wait = max(1, int(self.poll * 1000))
        found: Any = self.store.xread({self.key: self.cursor}, count=READ_COUNT, block=wait)
        return _entries(found, self.key)

    def _message(self, entry: Entry) -> str | None:
        entry_id, fields = entry
        self.cursor = entry_id
        try:
            notification = NotificationOut.model_validate_json(fields.get(FIELD, ""))
        except ValidationError:
            log.warning("skipped a malformed entry %s of %s", entry_id, self.key)
            return None
        if notification.user_id != self.user_id:  # the key is the user's own: never expected
            log.error("skipped entry %s of %s: it names another user", entry_id, self.key)
            return None
        return f"id: {entry_id}\n" + sse_message(EVENT, notification.model_dump_json())


def _entries(found: Any, key: str) -> list[Entry]:
    """One stream's entries in an XREAD answer: ``[[key, entries]]`` (RESP2) or ``{key:
    entries}`` (RESP3)."""
    if isinstance(found, dict):
        return [(str(i), fields) for i, fields in found.get(key) or []]
    return [
        (str(i), fields) for name, entries in found or [] if name == key for i, fields in entries
    ]


def respond(user_id: int, resume_after: str | None) -> Response:
    """The streaming response of ``user_id``'s notifications (a slot of the SSE caps)."""
    slot = open_slot(user_id)
    try:
        store = redis()
        key = user_stream_key(user_id)
        # Fixed now, not when the body starts: nothing stored after the request is missed.
        cursor = resume_after if resume_after is not None else newest_id(store, key)
        config = current_app.config
        stream = UserStream(
            store,
            user_id,
            cursor,
            backlog=resume_after is not None,
            keepalive=float(config["SSE_KEEPALIVE_SECONDS"]),
            poll=float(config["SSE_POLL_SECONDS"]),
            still_valid=token_still_valid(store, dict(get_jwt())),
        )
    except BaseException:
        slot.release()
        raise
    response = Response(stream_with_context(guarded(slot, stream.events())), mimetype=EVENT_STREAM)
    response.call_on_close(slot.release)  # a body never iterated still gives its slot back
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
