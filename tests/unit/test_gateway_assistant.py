"""/api/assistant through the gateway on fakes: the JSON answer, the Server-Sent Events
(parsed by a real SSE client, sseclient-py), the 4xx cases, owner-only conversations, and a
client that leaves mid-stream (it sets the cancel flag, and the answer stops).

The app is built here (not from conftest): the courses fake and :class:`FakeAssistant` behind
a JSON transport, and a fake Redis with streams. The fake assistant writes its events with the
service's own writer (``services.assistant.stream``), so the relay reads what the real one
would write.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sseclient import SSEClient

from contracts.assistant import (
    CANCEL_KEY,
    STREAM_KEY,
    Answer,
    AskRequest,
    AssistantApi,
    Conversation,
    ConversationSummary,
    DoneEvent,
    ErrorEvent,
    HexId,
    SourcesEvent,
    TokenEvent,
    Turn,
    TurnStatus,
)
from contracts.base import Id
from contracts.content import Passage
from contracts.errors import MeshError, NotFound, Unavailable
from contracts.users import UserOut
from gateway.app import create_app
from gateway.auth import issue_pair
from gateway.deps import Services
from gateway.openapi import build_document
from gateway.rpc_pool import RpcClient
from mesh.context import get_correlation_id
from mesh.settings import get_settings
from services.assistant.stream import events_for
from tests.unit.fake_redis_streams import FakeStreamsRedis
from tests.unit.service_fakes import FakeCourses, LocalTransport, validated

ASK = "/api/assistant/ask"
CONVERSATIONS = "/api/assistant/conversations"
SSE = {"Accept": "text/event-stream"}
CONFIG = {
    "TESTING": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_STORAGE_OPTIONS": {},
    "API_RATE_IP": "100000/minute",
    "SSE_POLL_SECONDS": 0.01,
    "SSE_KEEPALIVE_SECONDS": 5.0,
    "ASSISTANT_FIRST_EVENT_SECONDS": 2.0,
    "ASSISTANT_STREAM_SECONDS": 5.0,
    "ASSISTANT_ASK_THREADS": 4,
}
PASSAGE = Passage(
    lesson_id=3,
    position=0,
    locator="§1",
    text="A decorator wraps a function.",
    score=0.03,
    similarity=0.71,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------- the fake assistant


class FakeAssistant(AssistantApi):
    """The assistant in memory, streaming as the service does: ``sources``, a ``token`` per
    piece, then ``done`` (or ``error`` after ``fail_after`` pieces); it stops when the cancel
    flag is up. ``hold_before``/``hold_after`` pause it before/after the ``sources`` event
    until set; ``refuse`` is raised before anything is written."""

    def __init__(self, redis: FakeStreamsRedis) -> None:
        self.redis = redis
        self.pieces = ["A decorator ", "wraps ", "a function ", "[1]."]
        self.sources = [PASSAGE]
        self.delay = 0.0
        self.fail_after: int | None = None
        self.refuse: MeshError | None = None
        self.hold_before = threading.Event()
        self.hold_after = threading.Event()
        self.hold_before.set()
        self.hold_after.set()
        self.asked: list[AskRequest] = []
        self.correlation_ids: list[str | None] = []
        self.finished = threading.Event()
        self.conversations: dict[str, dict[str, Any]] = {}
        self.turns: dict[str, list[Turn]] = {}

    def ping(self) -> str:
        return "assistant"

    @validated
    def ask(self, request: AskRequest) -> Answer:
        self.asked.append(request)
        self.correlation_ids.append(get_correlation_id())
        try:
            return self._answer(request)
        finally:
            self.finished.set()

    def _answer(self, request: AskRequest) -> Answer:
        if self.refuse is not None:
            raise self.refuse
        asked_at = utcnow()
        conversation_id = self._conversation(request, asked_at)
        events = events_for(self.redis, request.stream_id)  # type: ignore[arg-type]
        self.hold_before.wait(10)
        found = bool(self.sources)
        first = SourcesEvent(
            conversation_id=conversation_id, mode="extractive", found=found, sources=self.sources
        )
        cancelled = events.send("sources", first)
        self.hold_after.wait(10)
        text, status, error = self._tokens(events, cancelled)
        turn = Turn(
            question=request.question,
            answer=text,
            sources=self.sources,
            mode="extractive",
            found=found,
            status=status,
            error=error,
            asked_at=asked_at,
            answered_at=utcnow(),
        )
        self.turns[conversation_id].append(turn)
        self.conversations[conversation_id]["updated_at"] = turn.answered_at
        if status == "complete":
            done = DoneEvent(conversation_id=conversation_id, mode="extractive", found=found)
            events.send("done", done)
        elif status == "error":
            assert error is not None
            failed = ErrorEvent(
                conversation_id=conversation_id, message=error, sources=self.sources
            )
            events.send("error", failed)
        return Answer(
            conversation_id=conversation_id,
            answer=text,
            sources=self.sources,
            mode="extractive",
            found=found,
            status=status,
            error=error,
        )

    def _tokens(self, events: Any, cancelled: bool) -> tuple[str, TurnStatus, str | None]:
        sent: list[str] = []
        for number, piece in enumerate(self.pieces):
            if cancelled:
                return "".join(sent), "cancelled", None
            if self.fail_after is not None and number >= self.fail_after:
                return "".join(sent), "error", "the language model did not answer in time"
            time.sleep(self.delay)
            sent.append(piece)
            cancelled = events.send("token", TokenEvent(text=piece))
        return "".join(sent), ("cancelled" if cancelled else "complete"), None

    def _conversation(self, request: AskRequest, now: datetime) -> str:
        if request.conversation_id is None:
            conversation_id = uuid.uuid4().hex
            self.conversations[conversation_id] = {
                "user_id": request.user_id,
                "course_id": request.course_id,
                "title": request.question,
                "created_at": now,
                "updated_at": now,
            }
            self.turns[conversation_id] = []
            return conversation_id
        found = self.conversations.get(request.conversation_id)
        if found is None or (found["user_id"], found["course_id"]) != (
            request.user_id,
            request.course_id,
        ):
            raise NotFound("conversation not found")
        return request.conversation_id

    def _summary(self, conversation_id: str) -> dict[str, Any]:
        doc = self.conversations[conversation_id]
        return {
            "conversation_id": conversation_id,
            "course_id": doc["course_id"],
            "title": doc["title"],
            "created_at": doc["created_at"],
            "updated_at": doc["updated_at"],
        }

    @validated
    def list_conversations(self, user_id: Id) -> list[ConversationSummary]:
        mine = [c for c, doc in self.conversations.items() if doc["user_id"] == user_id]
        mine.sort(key=lambda c: self.conversations[c]["updated_at"], reverse=True)
        return [ConversationSummary(**self._summary(c)) for c in mine]

    @validated
    def get_conversation(self, conversation_id: HexId, user_id: Id) -> Conversation:
        doc = self.conversations.get(conversation_id)
        if doc is None or doc["user_id"] != user_id:
            raise NotFound("conversation not found")
        return Conversation(**self._summary(conversation_id), turns=self.turns[conversation_id])


class NoRpc(RpcClient):
    """The raw RPC client: only readiness pings, which these tests never make."""

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the gateway called {service}.{method} outside Services")

    def close(self) -> None:
        pass


# ----------------------------------------------------------------- the app


@dataclass(frozen=True)
class World:
    """A teacher with a published course (student enrolled) and a draft; a stranger."""

    course: int
    draft: int
    teacher: dict[str, str]
    student: dict[str, str]
    stranger: dict[str, str]
    student_id: int


@pytest.fixture
def redis() -> FakeStreamsRedis:
    return FakeStreamsRedis()


@pytest.fixture
def assistant(redis: FakeStreamsRedis) -> Iterator[FakeAssistant]:
    fake = FakeAssistant(redis)
    yield fake
    fake.hold_before.set()  # no background ask outlives its test
    fake.hold_after.set()


@pytest.fixture
def courses() -> FakeCourses:
    return FakeCourses()


@pytest.fixture
def make_app(
    redis: FakeStreamsRedis, assistant: FakeAssistant, courses: FakeCourses, tmp_path: Path
) -> Callable[..., Flask]:
    def build(**overrides: Any) -> Flask:
        transport = LocalTransport(courses=courses, assistant=assistant)
        return create_app(
            {**CONFIG, "UPLOADS_PATH": str(tmp_path), **overrides},
            rpc=NoRpc(),
            redis=redis,  # type: ignore[arg-type]
            services=Services.over(transport),
        )

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_ids = itertools.count(100)


def token_of(app: Flask, role: str = "student") -> tuple[int, dict[str, str]]:
    user_id = next(_ids)
    user = UserOut(
        id=user_id,
        email=f"u{user_id}@example.com",
        name="U",
        role=role,  # type: ignore[arg-type]
        created_at=utcnow(),
    )
    with app.app_context():
        pair = issue_pair(user)
    return user_id, {"Authorization": f"Bearer {pair.access_token}"}


@pytest.fixture
def world(app: Flask, courses: FakeCourses) -> World:
    teacher_id, teacher = token_of(app, "instructor")
    student_id, student = token_of(app)
    _, stranger = token_of(app)
    course = courses.add(teacher_id, "Python", published=True)
    draft = courses.add(teacher_id, "Draft")
    courses.enroll(course.id, student_id)
    return World(course.id, draft.id, teacher, student, stranger, student_id)


class Body:
    """A streamed test response as sseclient's event source: chunks, and ``close``."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks = response.iter_encoded()

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks  # type: ignore[no-any-return]

    def close(self) -> None:
        self.response.close()


def sse_events(response: Any) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) for e in SSEClient(Body(response)).events()]


def ask_body(world: World, question: str = "what is a decorator?", **extra: Any) -> dict[str, Any]:
    return {"course_id": world.course, "question": question, **extra}


# ----------------------------------------------------------------- JSON


def test_the_json_answer(client: FlaskClient, world: World, assistant: FakeAssistant) -> None:
    response = client.post(ASK, json=ask_body(world), headers=world.student)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["answer"] == "A decorator wraps a function [1]."
    assert body["sources"] == [PASSAGE.model_dump(mode="json")]
    assert (body["mode"], body["found"], body["status"], body["error"]) == (
        "extractive",
        True,
        "complete",
        None,
    )
    (asked,) = assistant.asked
    assert (asked.user_id, asked.course_id, asked.stream_id) == (
        world.student_id,
        world.course,
        None,
    )
    assert asked.question == "what is a decorator?"


def test_the_instructor_may_ask_too(client: FlaskClient, world: World) -> None:
    response = client.post(ASK, json=ask_body(world), headers=world.teacher)
    assert response.status_code == 200


def test_a_failed_answer_is_a_200_with_its_error_and_sources(
    client: FlaskClient, world: World, assistant: FakeAssistant
) -> None:
    assistant.fail_after = 2
    body = client.post(ASK, json=ask_body(world), headers=world.student).get_json()
    assert body["status"] == "error"
    assert body["error"] == "the language model did not answer in time"
    assert body["answer"] == "A decorator wraps "
    assert body["sources"][0]["lesson_id"] == PASSAGE.lesson_id


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("question", "status"),
    [("", 422), ("   \n ", 422), ("x" * 2001, 422), ("bad\x00byte", 422), ("x" * 2000, 200)],
)
def test_questions_are_1_to_2000_characters(
    client: FlaskClient, world: World, question: str, status: int
) -> None:
    response = client.post(ASK, json=ask_body(world, question), headers=world.student)
    assert response.status_code == status, response.get_json()
    if status == 422:
        assert response.get_json()["details"][0]["field"] == "question"


def test_who_may_ask(client: FlaskClient, world: World) -> None:
    unknown = client.post(ASK, json={**ask_body(world), "course_id": 999}, headers=world.student)
    assert unknown.status_code == 404
    draft = client.post(
        ASK, json={**ask_body(world), "course_id": world.draft}, headers=world.teacher
    )
    assert draft.status_code == 409
    assert draft.get_json()["message"] == "course is not published"
    hidden = client.post(
        ASK, json={**ask_body(world), "course_id": world.draft}, headers=world.student
    )
    assert hidden.status_code == 404  # a draft does not exist for a student
    assert client.post(ASK, json=ask_body(world), headers=world.stranger).status_code == 403
    assert client.post(ASK, json=ask_body(world)).status_code == 401


def test_bad_bodies(client: FlaskClient, world: World) -> None:
    for body in (
        {"course_id": world.course},
        {**ask_body(world), "conversation_id": "not-hex"},
        {**ask_body(world), "course_id": "1"},
        {**ask_body(world), "extra": 1},
    ):
        assert client.post(ASK, json=body, headers=world.student).status_code == 422, body
    assert client.post(ASK, data="{", headers=world.student).status_code == 415


# ----------------------------------------------------------------- Server-Sent Events


def test_the_answer_as_server_sent_events(
    client: FlaskClient, world: World, assistant: FakeAssistant, redis: FakeStreamsRedis
) -> None:
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names == ["sources", "token", "token", "token", "token", "done"]
    sources, done = events[0][1], events[-1][1]
    assert sources["sources"] == [PASSAGE.model_dump(mode="json")]
    assert sources["found"] is True
    assert "".join(data["text"] for name, data in events if name == "token") == (
        "A decorator wraps a function [1]."
    )
    assert done["conversation_id"] == sources["conversation_id"]
    (asked,) = assistant.asked
    assert asked.stream_id is not None
    assert not redis.exists(STREAM_KEY.format(stream_id=asked.stream_id))  # dropped once read
    assert not redis.exists(CANCEL_KEY.format(stream_id=asked.stream_id))  # nothing cancelled


def test_the_background_ask_keeps_the_request_s_correlation_id(
    client: FlaskClient, world: World, assistant: FakeAssistant
) -> None:
    headers = {**world.student, **SSE, "X-Request-ID": "ask-42"}
    response = client.post(ASK, json=ask_body(world), headers=headers)
    assert response.headers["X-Request-ID"] == "ask-42"
    assert [name for name, _ in sse_events(response)][-1] == "done"
    assert assistant.correlation_ids == ["ask-42"]


def test_an_upstream_failure_ends_the_stream_with_an_error_and_the_passages(
    client: FlaskClient, world: World, assistant: FakeAssistant
) -> None:
    assistant.fail_after = 1
    events = sse_events(client.post(ASK, json=ask_body(world), headers={**world.student, **SSE}))
    assert [name for name, _ in events] == ["sources", "token", "error"]
    error = events[-1][1]
    assert error["message"] == "the language model did not answer in time"
    assert error["sources"] == [PASSAGE.model_dump(mode="json")]


def test_errors_before_the_first_event_are_http_errors(
    client: FlaskClient, world: World, assistant: FakeAssistant
) -> None:
    foreign = {**ask_body(world), "conversation_id": uuid.uuid4().hex}
    response = client.post(ASK, json=foreign, headers={**world.student, **SSE})
    assert response.status_code == 404
    assert response.get_json()["message"] == "conversation not found"
    assistant.refuse = Unavailable("service content did not answer")
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert response.status_code == 503
    assert response.mimetype == "application/json"


def test_no_first_event_in_time_is_a_503_and_cancels(
    make_app: Callable[..., Flask], world: World, assistant: FakeAssistant, redis: FakeStreamsRedis
) -> None:
    client = make_app(ASSISTANT_FIRST_EVENT_SECONDS=0.2).test_client()
    assistant.hold_before.clear()
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert response.status_code == 503
    stream_id = assistant.asked[0].stream_id
    assert redis.get(CANCEL_KEY.format(stream_id=stream_id)) == "1"
    assistant.hold_before.set()
    assert assistant.finished.wait(5)
    assert next(iter(assistant.turns.values()))[0].status == "cancelled"


def test_a_client_that_leaves_cancels_the_answer(
    client: FlaskClient, world: World, assistant: FakeAssistant, redis: FakeStreamsRedis
) -> None:
    assistant.pieces = [f"word{n} " for n in range(500)]
    assistant.delay = 0.005
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    body = Body(response)
    events = SSEClient(body).events()
    assert [next(events).event for _ in range(3)] == ["sources", "token", "token"]
    body.close()  # the client goes away
    stream_id = assistant.asked[0].stream_id
    assert redis.get(CANCEL_KEY.format(stream_id=stream_id)) == "1"
    assert assistant.finished.wait(5), "the answer went on after its client left"
    (turn,) = next(iter(assistant.turns.values()))
    assert turn.status == "cancelled"
    assert len(turn.answer.split()) < 500


def test_a_stream_never_read_is_cancelled_when_closed(
    client: FlaskClient, world: World, assistant: FakeAssistant, redis: FakeStreamsRedis
) -> None:
    assistant.hold_after.clear()
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    response.close()
    stream_id = assistant.asked[0].stream_id
    assert redis.get(CANCEL_KEY.format(stream_id=stream_id)) == "1"


def test_the_stream_has_a_deadline(
    make_app: Callable[..., Flask], world: World, assistant: FakeAssistant, redis: FakeStreamsRedis
) -> None:
    client = make_app(ASSISTANT_STREAM_SECONDS=0.3).test_client()
    assistant.hold_after.clear()  # sources, then nothing
    started = time.monotonic()
    events = sse_events(client.post(ASK, json=ask_body(world), headers={**world.student, **SSE}))
    assert time.monotonic() - started < 3
    assert [name for name, _ in events] == ["sources", "error"]
    assert events[-1][1]["message"] == "the answer took too long and was cut short"
    assert events[-1][1]["sources"] == [PASSAGE.model_dump(mode="json")]
    assert redis.get(CANCEL_KEY.format(stream_id=assistant.asked[0].stream_id)) == "1"


def test_quiet_streams_get_keepalive_comments(
    make_app: Callable[..., Flask], world: World, assistant: FakeAssistant
) -> None:
    client = make_app(SSE_KEEPALIVE_SECONDS=0.02).test_client()
    assistant.delay = 0.1
    response = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    raw = b"".join(response.iter_encoded()).decode()
    assert ": keepalive\n\n" in raw
    assert raw.rstrip().splitlines()[0] == "event: sources"


def test_too_many_streams_at_once_is_a_503(
    make_app: Callable[..., Flask], world: World, assistant: FakeAssistant
) -> None:
    client = make_app(ASSISTANT_ASK_THREADS=1).test_client()
    assistant.hold_after.clear()
    first = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    second = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert second.status_code == 503
    assistant.hold_after.set()
    assert [name for name, _ in sse_events(first)][-1] == "done"


def test_accept_picks_the_answer_s_form(client: FlaskClient, world: World) -> None:
    for accept, mimetype in (
        ("*/*", "application/json"),
        ("application/json, text/event-stream;q=0.5", "application/json"),
        ("text/event-stream, application/json;q=0.5", "text/event-stream"),
    ):
        headers = {**world.student, "Accept": accept}
        response = client.post(ASK, json=ask_body(world), headers=headers)
        assert response.mimetype == mimetype, accept
        response.close()


# ----------------------------------------------------------------- conversations


def test_conversations_are_their_owner_s(
    client: FlaskClient, world: World, courses: FakeCourses, app: Flask
) -> None:
    first = client.post(ASK, json=ask_body(world), headers=world.student).get_json()
    conversation_id = first["conversation_id"]
    follow_up = ask_body(world, "and why?", conversation_id=conversation_id)
    again = client.post(ASK, json=follow_up, headers=world.student).get_json()
    assert again["conversation_id"] == conversation_id

    listed = client.get(CONVERSATIONS, headers=world.student).get_json()["items"]
    assert [c["conversation_id"] for c in listed] == [conversation_id]
    assert listed[0]["title"] == "what is a decorator?"
    one = client.get(f"{CONVERSATIONS}/{conversation_id}", headers=world.student).get_json()
    assert [t["question"] for t in one["turns"]] == ["what is a decorator?", "and why?"]

    assert client.get(CONVERSATIONS, headers=world.teacher).get_json()["items"] == []
    other = client.get(f"{CONVERSATIONS}/{conversation_id}", headers=world.teacher)
    assert other.status_code == 404
    stolen = client.post(ASK, json=follow_up, headers=world.teacher)
    assert stolen.status_code == 404
    assert client.get(f"{CONVERSATIONS}/NOT-HEX", headers=world.student).status_code == 404
    assert client.get(CONVERSATIONS).status_code == 401


# ----------------------------------------------------------------- the declarations


def test_the_document_tells_json_or_events(app: Flask) -> None:
    document = build_document(app)
    ask = document["paths"][ASK]["post"]
    assert set(ask["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"403", "404", "409", "422", "401"} <= set(ask["responses"])
    one = document["paths"][f"{CONVERSATIONS}/{{conversation_id}}"]["get"]
    (param,) = [p for p in one["parameters"] if p.get("in") == "path"]
    assert param["schema"]["pattern"] == "^[0-9a-f]{32}$"


class TimedRpc(RpcClient):
    """Records the timeout each call waited with (None: the default)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.timeouts: list[tuple[str, float | None]] = []

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.timeouts.append((f"{service}.{method}", None))
        return []

    def call_with_timeout(
        self, timeout: float, service: str, method: str, *args: Any, **kwargs: Any
    ) -> Any:
        self.timeouts.append((f"{service}.{method}", timeout))
        return self.answer.model_dump(mode="json")

    def close(self) -> None:
        pass


def test_the_ask_rpc_waits_as_long_as_an_answer_may_take() -> None:
    answer = Answer(
        conversation_id=uuid.uuid4().hex, answer="", sources=[], mode="extractive", found=False
    )
    rpc = TimedRpc(answer)
    services = Services.over(rpc)
    question = AskRequest(course_id=1, question="q", user_id=1)
    assert services.assistant.ask(question) == answer
    services.assistant.list_conversations(1)
    settings = get_settings()
    (ask, listed) = rpc.timeouts
    assert ask[0] == "assistant.ask"
    assert ask[1] is not None and ask[1] > settings.assistant_max_seconds + settings.rpc_timeout
    assert listed == ("assistant.list_conversations", None)  # the usual RPC timeout
