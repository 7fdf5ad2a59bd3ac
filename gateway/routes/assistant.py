"""/api/assistant: questions about a course answered from its content, and the caller's
conversations.

``POST /ask`` answers one JSON body, or, with ``Accept: text/event-stream``, Server-Sent
Events as the answer is written: the view runs the ask RPC on a few threads the app owns and
relays the events the assistant appends to a Redis Stream (``contracts.assistant``). Errors
found before the first event (no access, a foreign conversation, a service down) are plain
HTTP errors; later ones end the stream with an ``error`` event. A client that goes away sets
the stream's cancel flag, and the assistant stops at its next token.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError

from contracts.assistant import (
    CANCEL_KEY,
    STREAM_KEY,
    STREAM_TTL_SECONDS,
    TERMINAL_EVENTS,
    Answer,
    AskRequest,
    Conversation,
    ConversationSummary,
    DoneEvent,
    ErrorEvent,
    Question,
    SourcesEvent,
    TokenEvent,
)
from contracts.errors import Conflict, MeshError, Unavailable
from gateway.api import endpoint
from gateway.auth import current_user_id, current_viewer
from gateway.deps import redis, services
from gateway.routes.events import sse_message
from gateway.streams import guarded, open_slot
from mesh.settings import get_settings

bp = Blueprint("assistant", __name__, url_prefix="/api/assistant")
log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
RUNNER_KEY = "mesh.assistant.runner"
TOO_LONG = "the answer took too long and was cut short"
FAILED = "the assistant failed while answering"
EVENTS_TEXT = (
    "With `Accept: text/event-stream`, Server-Sent Events as the answer is written: "
    "`sources` (the passages, with lesson ids and scores), `token` (the next piece of text), "
    "then `done` (with the conversation id) or `error` (a message and the passages found so "
    "far); comments keep the connection alive. Otherwise the whole answer as JSON. Questions "
    "of 1 to 2000 characters; the course must be published."
)

_runner_lock = threading.Lock()


class ConversationList(BaseModel):
    items: list[ConversationSummary]


# ----------------------------------------------------------------- routes


@bp.post("/ask")
@endpoint(
    "Ask the course's assistant (its instructor and enrolled students)",
    tag="assistant",
    auth="access",
    body=Question,
    response=Answer,
    also_media=(EVENT_STREAM,),
    errors=(403, 404, 409),
    description=EVENTS_TEXT,
)
def ask(body: Question) -> Answer | Response:
    asker = current_viewer()
    course = services().courses.check_access(body.course_id, asker)
    if course.status != "published":
        raise Conflict("course is not published")
    question = AskRequest(**body.model_dump(), user_id=asker.user_id)
    if wants_events():
        return stream_answer(question)
    return services().assistant.ask(question)


@bp.get("/conversations")
@endpoint(
    "The caller's conversations with the assistant, most recent first",
    tag="assistant",
    auth="access",
    response=ConversationList,
)
def conversations() -> ConversationList:
    return ConversationList(items=services().assistant.list_conversations(current_user_id()))


@bp.get("/conversations/<conversation:conversation_id>")
@endpoint(
    "One of the caller's conversations, with its turns",
    tag="assistant",
    auth="access",
    response=Conversation,
)
def conversation(conversation_id: str) -> Conversation:
    return services().assistant.get_conversation(conversation_id, current_user_id())


def wants_events() -> bool:
    """True when the client prefers Server-Sent Events to JSON."""
    best = request.accept_mimetypes.best_match(("application/json", EVENT_STREAM))
    return best == EVENT_STREAM


# ----------------------------------------------------------------- the streamed answer


def stream_answer(question: AskRequest) -> Response:
    """Start the ask in the background and relay its events; an error before the first
    event is raised here, as an HTTP error. The stream takes a slot of the SSE caps
    (``gateway.streams``: 429 or 503 past them) for as long as it is open."""
    slot = open_slot(question.user_id)
    try:
        relay, first = start_relay(question)
    except BaseException:
        slot.release()
        raise
    response = Response(guarded(slot, relay.events(first)), mimetype=EVENT_STREAM)
    response.call_on_close(relay.close)  # also when the body is never iterated
    response.call_on_close(slot.release)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def start_relay(question: AskRequest) -> tuple[AnswerRelay, list[Event]]:
    """Submit the ask and wait for its first events."""
    stream_id = uuid.uuid4().hex
    question = question.model_copy(update={"stream_id": stream_id})
    answer = runner(current_app).submit(services().assistant.ask, question)
    relay = AnswerRelay(redis(), stream_id, answer, stream_limits())
    try:
        return relay, relay.first()
    except BaseException:
        relay.close()
        raise


@dataclass(frozen=True)
class StreamLimits:
    """Seconds: to the first event, for the whole answer, between keepalives, per read."""

    first: float
    total: float
    keepalive: float
    poll: float


def stream_limits() -> StreamLimits:
    """From the app's config. The whole answer's deadline defaults to the assistant's own
    bound plus two RPC timeouts (the search before it, the reply after it), as the ask RPC's
    timeout does: the service gives up first, and says so on the stream."""
    settings = get_settings()
    config = current_app.config
    first = config.get("ASSISTANT_FIRST_EVENT_SECONDS", 3 * settings.rpc_timeout)
    total = config.get(
        "ASSISTANT_STREAM_SECONDS", settings.assistant_max_seconds + 2 * settings.rpc_timeout
    )
    return StreamLimits(
        first=float(first),
        total=float(total),
        keepalive=float(config["SSE_KEEPALIVE_SECONDS"]),
        poll=float(config["SSE_POLL_SECONDS"]),
    )


class Runner:
    """The app's few threads for the asks being streamed; beyond ``size`` at once, 503."""

    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="assistant-ask")
        self._slots = threading.BoundedSemaphore(size)

    def submit(self, fn: Callable[[AskRequest], Answer], question: AskRequest) -> Future[Answer]:
        """Run ``fn(question)`` on a thread, in a copy of this context (correlation id)."""
        if not self._slots.acquire(blocking=False):
            raise Unavailable("too many answers are being written: retry in a moment")
        try:
            future = self._pool.submit(contextvars.copy_context().run, fn, question)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future


def runner(app: Flask) -> Runner:
    """The app's :class:`Runner`, made on first use (``ASSISTANT_ASK_THREADS``, default two
    per gateway thread: a cancelled answer may hold one until its next token)."""
    with _runner_lock:
        found = app.extensions.get(RUNNER_KEY)
        if found is None:
            size = app.config.get("ASSISTANT_ASK_THREADS", 2 * get_settings().gateway_threads)
            found = app.extensions[RUNNER_KEY] = Runner(int(size))
        return found


Event = tuple[str, str]
"""An SSE event: its name and its JSON data."""


class AnswerRelay:
    """Reads one answer's Redis Stream and turns it into SSE messages, until its last event,
    the deadline, or the client leaving (then it sets the cancel flag)."""

    def __init__(
        self,
        store: Redis,
        stream_id: str,
        answer: Future[Answer],
        limits: StreamLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.answer = answer
        self.limits = limits
        self.clock = clock
        self.key = STREAM_KEY.format(stream_id=stream_id)
        self.cancel_key = CANCEL_KEY.format(stream_id=stream_id)
        self.started = clock()
        self.last_id = "0-0"
        self.sources: list[Any] = []
        self.conversation_id: str | None = None
        self.finished = False

    def first(self) -> list[Event]:
        """The first events, once there are some. The ask's own error when it failed
        without any (NotFound, Unavailable...); Unavailable when none came in time."""
        while not (events := self._read(block=True)):
            if self.answer.done():
                return self._read(block=False) or self._whole_answer()
            if self.clock() - self.started >= self.limits.first:
                raise Unavailable("the assistant did not start answering in time")
        return events

    def events(self, first: list[Event]) -> Iterator[str]:
        """The SSE messages: ``first``, then each event as it comes, keepalive comments in
        between; closing the iterator early (the client left) cancels the answer."""
        try:
            pending, last_sent = first, self.clock()
            while True:
                for name, data in pending:
                    yield self._message(name, data)
                    if self.finished:
                        return
                if pending:
                    last_sent = self.clock()
                elif self.clock() - last_sent >= self.limits.keepalive:
                    yield ": keepalive\n\n"
                    last_sent = self.clock()
                pending = self._next()
        except RedisError as exc:
            log.warning("assistant stream lost, redis failed: %r", exc)
            yield self._message("error", self._error("the answer's stream was lost"))
        finally:
            self.close()

    def close(self) -> None:
        """Cancel the answer unless its last event was relayed (idempotent)."""
        if self.finished:
            return
        self.finished = True
        try:
            self.store.set(self.cancel_key, "1", ex=STREAM_TTL_SECONDS)
        except RedisError as exc:
            log.warning("could not cancel an answer, redis failed: %r", exc)

    def _next(self) -> list[Event]:
        if self.clock() - self.started >= self.limits.total:
            self.close()  # the assistant stops at its next token
            return [("error", self._error(TOO_LONG))]
        events = self._read(block=True)
        if events or not self.answer.done():
            return events
        return self._read(block=False) or self._ending()

    def _read(self, *, block: bool) -> list[Event]:
        wait = max(1, int(self.limits.poll * 1000)) if block else None
        found: Any = self.store.xread({self.key: self.last_id}, block=wait)
        events: list[Event] = []
        for entry_id, fields in _entries(found, self.key):
            self.last_id = entry_id
            events.append((fields["event"], fields["data"]))
        return events

    def _message(self, name: str, data: str) -> str:
        self._remember(name, data)
        if name in TERMINAL_EVENTS:
            self._end()
        return sse_message(name, data)

    def _remember(self, name: str, data: str) -> None:
        """Keep the passages and the conversation: an error event repeats them."""
        if name == "sources":
            payload = json.loads(data)
            self.sources = payload.get("sources", [])
            self.conversation_id = payload.get("conversation_id")

    def _end(self) -> None:
        self.finished = True
        try:
            self.store.delete(self.key)
        except RedisError as exc:
            log.warning("could not drop an answer's stream: %r", exc)

    def _ending(self) -> list[Event]:
        """The ask is over but its last event never came: say how it ended."""
        error = self.answer.exception()
        if error is not None:
            return [("error", self._error(_safe_message(error)))]
        answer = self.answer.result()
        if answer.status == "complete":
            done = DoneEvent(
                conversation_id=answer.conversation_id, mode=answer.mode, found=answer.found
            )
            return [("done", done.model_dump_json())]
        return [("error", self._error(answer.error or FAILED))]

    def _whole_answer(self) -> list[Event]:
        """The ask ended without streaming (its error is raised): its answer as events."""
        answer = self.answer.result()
        sources = SourcesEvent(
            conversation_id=answer.conversation_id,
            mode=answer.mode,
            found=answer.found,
            sources=answer.sources,
        )
        events = [("sources", sources.model_dump_json())]
        self._remember(*events[0])
        if answer.answer:
            events.append(("token", TokenEvent(text=answer.answer).model_dump_json()))
        return events + self._ending()

    def _error(self, message: str) -> str:
        event = ErrorEvent.model_validate(
            {"conversation_id": self.conversation_id, "message": message, "sources": self.sources}
        )
        return event.model_dump_json()


def _entries(found: Any, key: str) -> list[tuple[str, dict[str, str]]]:
    """The entries of one stream in an XREAD answer: ``[[key, [(id, fields), ...]]]`` (RESP2)
    or ``{key: [[id, fields], ...]}`` (RESP3)."""
    if isinstance(found, dict):
        return [(entry_id, fields) for entry_id, fields in found.get(key) or []]
    return [
        (entry_id, fields)
        for name, entries in found or []
        if name == key
        for entry_id, fields in entries
    ]


def _safe_message(error: BaseException) -> str:
    if isinstance(error, MeshError):
        return error.message
    log.error("the ask failed: %r", error)
    return FAILED
