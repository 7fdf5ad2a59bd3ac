"""What the assistant does: find the passages close enough to a question, answer from them
(quoting them, or through a chat model), stream the answer's events, keep the turn.

Every step is I/O (the content service, Redis, MongoDB, the model's HTTP stream): the
question is embedded by the content service, and the extractive answer is string work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from pymongo.database import Database

from contracts.assistant import (
    Answer,
    AnswerMode,
    AskRequest,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    TokenEvent,
    Turn,
    TurnStatus,
)
from contracts.content import QUERY_MAX, ContentApi, Passage, SearchRequest
from contracts.errors import Unavailable
from services.assistant import extractive, store
from services.assistant.model import ChatModel, ModelFailed, messages
from services.assistant.stream import Events, events_for

TOO_LONG = "the answer took too long and was cut short"


@dataclass(frozen=True)
class Limits:
    """How close a passage must be, how much history a follow-up sees, how long an answer
    may take, how many passages an answer rests on."""

    min_similarity: float = 0.30
    history_turns: int = 3
    max_seconds: float = 90.0
    passages: int = 5


@dataclass(frozen=True)
class Setup:
    """The chat model (None: extractive answers) and the limits, read once at start."""

    model: ChatModel | None
    limits: Limits = field(default_factory=Limits)

    @property
    def mode(self) -> AnswerMode:
        return "extractive" if self.model is None else "model"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Tools:
    """What ``ask`` works with, passed in by the service (or a test)."""

    content: ContentApi
    db: Database
    redis: redis.Redis
    setup: Setup
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow


@dataclass(frozen=True)
class Outcome:
    text: str
    status: TurnStatus = "complete"
    error: str | None = None


@dataclass(frozen=True)
class Context:
    """What a question is answered from: its conversation's recent turns, the passages."""

    conversation_id: str
    is_new: bool
    history: list[Turn]
    sources: list[Passage]


def ask(tools: Tools, request: AskRequest) -> Answer:
    """Answer ``request``: ``sources`` first, then the answer's tokens, then ``done`` (or
    ``error``) on its stream; the turn is saved before the last event."""
    deadline = tools.clock() + tools.setup.limits.max_seconds
    asked_at = tools.now()
    context = gather(tools, request)
    mode, found = tools.setup.mode, bool(context.sources)
    events = events_for(tools.redis, request.stream_id)
    first = SourcesEvent(
        conversation_id=context.conversation_id, mode=mode, found=found, sources=context.sources
    )
    cancelled = events.send("sources", first)
    if context.is_new:
        store.start(tools.db, context.conversation_id, request, asked_at)
    if cancelled:
        outcome = Outcome("", "cancelled")
    else:
        pieces = answer_pieces(tools.setup.model, request.question, context)
        outcome = relay(pieces, events, deadline, tools.clock)
    turn = Turn(
        question=request.question,
        answer=outcome.text,
        sources=context.sources,
        mode=mode,
        found=found,
        status=outcome.status,
        error=outcome.error,
        asked_at=asked_at,
        answered_at=tools.now(),
    )
    store.add_turn(tools.db, context.conversation_id, request.user_id, turn)
    finish(events, context.conversation_id, turn)
    fields = turn.model_dump(include={"answer", "sources", "mode", "found", "status", "error"})
    return Answer(conversation_id=context.conversation_id, **fields)


def gather(tools: Tools, request: AskRequest) -> Context:
    """The conversation (NotFound when it is not the caller's) and the passages."""
    conversation = store.continued(tools.db, request)
    if conversation is None:
        history: list[Turn] = []
        conversation_id = uuid.uuid4().hex
    else:
        conversation_id = conversation["conversation_id"]
        history = store.recent_turns(tools.db, conversation_id, tools.setup.limits.history_turns)
    sources = retrieve(tools.content, request, history, tools.setup.limits)
    return Context(conversation_id, conversation is None, history, sources)


def retrieve(
    content: ContentApi, request: AskRequest, history: list[Turn], limits: Limits
) -> list[Passage]:
    """The course's passages close enough to the question. A follow-up that finds none on
    its own ("and why?") is searched again with the previous question."""
    queries = [request.question]
    if history:
        queries.append(f"{request.question} {history[-1].question}")
    for text in queries:
        found = search(content, request.course_id, text, limits.passages)
        close = [p for p in found if _close_enough(p, limits.min_similarity)]
        if close:
            return close
    return []


def _close_enough(passage: Passage, minimum: float) -> bool:
    # An index that does not tell the similarity (an older content service): keep it.
    return passage.similarity is None or passage.similarity >= minimum


def search(content: ContentApi, course_id: int, text: str, limit: int) -> list[Passage]:
    request = SearchRequest(course_id=course_id, q=query_text(text), limit=limit)
    try:
        return content.search(request)
    except TimeoutError:
        raise Unavailable("the course's content did not answer in time") from None


def query_text(text: str, limit: int = QUERY_MAX) -> str:
    """``text`` cut to what a search takes, at a word boundary when there is one."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0]
    return cut if 0 < len(cut) <= limit else text[:limit]


def answer_pieces(model: ChatModel | None, question: str, context: Context) -> Iterator[str]:
    """The answer's text, piece by piece: "not found", quotes, or the model's tokens."""
    if not context.sources:
        return extractive.pieces(extractive.NOT_FOUND)
    if model is None:
        return extractive.pieces(extractive.compose(question, context.sources))
    return model.stream(messages(question, context.sources, context.history))


def relay(
    pieces: Iterator[str], events: Events, deadline: float, clock: Callable[[], float]
) -> Outcome:
    """Send each piece as a ``token`` until the end, a failure, a cancel or the deadline."""
    text: list[str] = []
    try:
        for piece in pieces:
            text.append(piece)
            if events.send("token", TokenEvent(text=piece)):
                return Outcome("".join(text), "cancelled")
            if clock() > deadline:
                return Outcome("".join(text), "error", TOO_LONG)
    except ModelFailed as exc:
        return Outcome("".join(text), "error", str(exc))
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # a model's stream stopped early is closed now, not when collected
    return Outcome("".join(text))


def finish(events: Events, conversation_id: str, turn: Turn) -> None:
    """The last event: ``done``, or ``error`` with the sources; none once cancelled."""
    if turn.status == "complete":
        events.send(
            "done", DoneEvent(conversation_id=conversation_id, mode=turn.mode, found=turn.found)
        )
    elif turn.status == "error":
        message = turn.error or "the answer failed"
        events.send(
            "error",
            ErrorEvent(conversation_id=conversation_id, message=message, sources=turn.sources),
        )
