"""The course assistant: questions answered from a course's content, and conversations.

An answer is also streamed while it is generated: the service appends its events to the Redis
Stream ``STREAM_KEY`` (fields ``event``, one of :data:`StreamEvent`, and ``data``, the JSON of
the event's model below), and the gateway relays them as Server-Sent Events. The gateway asks
the service to stop early by setting ``CANCEL_KEY``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import Field, StringConstraints

from contracts.base import Contract, Id, Text, UtcDatetime
from contracts.content import Passage

QUESTION_MAX = 2000
QuestionText = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=QUESTION_MAX)
]
HexId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A conversation or stream id: a UUID in 32 lowercase hex digits."""
Verbatim = Annotated[str, StringConstraints(strip_whitespace=False)]
"""Text kept as it is (a contract strips its strings): an answer, a piece of one."""

AnswerMode = Literal["extractive", "model"]
"""Quoted from the course (no language model configured), or written by a language model."""
TurnStatus = Literal["complete", "error", "cancelled"]
StreamEvent = Literal["sources", "token", "done", "error"]
TERMINAL_EVENTS: tuple[StreamEvent, ...] = ("done", "error")

STREAM_KEY = "assistant:stream:{stream_id}"
CANCEL_KEY = "assistant:cancel:{stream_id}"
STREAM_TTL_SECONDS = 300
"""How long an answer's stream (and a cancel flag) outlives its last write."""


class Question(Contract):
    """What a student asks about a course (the HTTP body)."""

    course_id: Id
    question: QuestionText
    conversation_id: HexId | None = Field(
        None, description="Continue this conversation (a follow-up); leave out to start one."
    )


class AskRequest(Question):
    """A question, with who asks and where to stream the answer (filled in by the gateway)."""

    user_id: Id
    stream_id: HexId | None = Field(
        None, description="Stream the answer's events to STREAM_KEY; none: no streaming."
    )


class Answer(Contract):
    """The whole answer: its text, the passages it rests on (numbered [1], [2]... in order)."""

    conversation_id: HexId
    answer: Verbatim
    sources: list[Passage]
    mode: AnswerMode
    found: bool = Field(description="False when no passage of the course is close enough.")
    status: TurnStatus = "complete"
    error: str | None = Field(None, description="Why the answer stopped early (status error).")


class Turn(Contract):
    """One question of a conversation and its answer."""

    question: str
    answer: Verbatim
    sources: list[Passage]
    mode: AnswerMode
    found: bool
    status: TurnStatus
    error: str | None = None
    asked_at: UtcDatetime
    answered_at: UtcDatetime


class ConversationSummary(Contract):
    conversation_id: HexId
    course_id: int
    title: str = Field(description="The conversation's first question.")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class Conversation(ConversationSummary):
    turns: list[Turn] = Field(description="Oldest first.")


class SourcesEvent(Contract):
    """The first event: the passages the answer will rest on."""

    conversation_id: HexId
    mode: AnswerMode
    found: bool
    sources: list[Passage]


class TokenEvent(Contract):
    """The next piece of the answer's text (its spaces included)."""

    text: Verbatim


class DoneEvent(Contract):
    """The answer is complete and saved in its conversation."""

    conversation_id: HexId
    mode: AnswerMode
    found: bool


class ErrorEvent(Contract):
    """The answer stopped early; ``sources`` are the passages found so far."""

    conversation_id: HexId | None = None
    message: str
    sources: list[Passage] = []


class AssistantApi(Protocol):
    """The assistant service's RPC surface (service name ``assistant``).

    The caller checks that the user may read the course; the service keeps each conversation
    to its owner and its course.
    """

    def ask(self, request: AskRequest) -> Answer:
        """Answer from the course's passages (NotFound for a conversation that is not the
        caller's or not of this course); an upstream model failure is an answer with status
        ``error``, never an exception."""
        ...

    def list_conversations(self, user_id: Id) -> list[ConversationSummary]:
        """The user's newest conversations, most recently active first."""
        ...

    def get_conversation(self, conversation_id: HexId, user_id: Id) -> Conversation:
        """A conversation with its turns; NotFound unless the user owns it."""
        ...
