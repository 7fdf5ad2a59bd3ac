"""/api/assistant through the gateway on fakes: the JSON answer, the Server-Sent Events
(parsed by a real SSE client, sseclient-py), the 4xx cases, owner-only conversations, and a
client that leaves mid-stream (it sets the cancel flag, and the answer stops).

The app is built here (not from conftest): the courses fake (indexing its published lessons in
a FakeContent) and the shared FakeAssistant (``tests/unit/service_fakes.py``, answering from
that content) behind a JSON transport, and a fake Redis with streams. The fake assistant writes
its events with the service's own writer (``services.assistant.stream``), so the relay reads
what the real one would write. Answers are extractive unless a test gives the assistant a
:class:`ScriptedModel` (fixed tokens, or an upstream failure after some).
"""

from __future__ import annotations

import itertools
import json
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

from contracts.assistant import CANCEL_KEY, STREAM_KEY, Answer, AskRequest
from contracts.content import Passage
from contracts.errors import Unavailable
from contracts.users import UserOut
from gateway.app import create_app
from gateway.auth import issue_pair
from gateway.deps import Services
from gateway.openapi import build_document
from gateway.rpc_pool import RpcClient
from mesh.settings import get_settings
from services.assistant import extractive
from tests.unit.fake_redis_streams import FakeStreamsRedis
from tests.unit.service_fakes import (
    MODEL_TIMED_OUT,
    FakeAssistant,
    FakeContent,
    FakeCourses,
    LocalTransport,
    ScriptedModel,
)

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
QUESTION = "what is a decorator?"
LESSON = "A decorator wraps a function and returns the wrapper."
PASSAGE = Passage(lesson_id=1, position=0, text=LESSON, score=1 / 61, similarity=1.0)
"""What the course's content answers to QUESTION: its one lesson, the first of the fakes."""
EXTRACTIVE = extractive.compose(QUESTION, [PASSAGE])


def utcnow() -> datetime:
    return datetime.now(UTC)


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
def content() -> FakeContent:
    return FakeContent()


@pytest.fixture
def assistant(content: FakeContent, redis: FakeStreamsRedis) -> Iterator[FakeAssistant]:
    fake = FakeAssistant(content, redis)
    yield fake
    fake.hold_before.set()  # no background ask outlives its test
    fake.hold_after.set()


@pytest.fixture
def courses(content: FakeContent) -> FakeCourses:
    return FakeCourses(content)


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
    course = courses.add(teacher_id, "Python", lessons=(LESSON,), published=True)
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


def ask_body(world: World, question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"course_id": world.course, "question": question, **extra}


# ----------------------------------------------------------------- JSON


def test_the_json_answer(client: FlaskClient, world: World, assistant: FakeAssistant) -> None:
    response = client.post(ASK, json=ask_body(world), headers=world.student)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["answer"] == EXTRACTIVE  # the course quoted and cited
    assert f"> {LESSON} [1]" in body["answer"]
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
    assert asked.question == QUESTION


def test_a_question_the_course_does_not_cover_is_not_found(
    client: FlaskClient, world: World
) -> None:
    off_topic = ask_body(world, "how long should bread dough rise?")
    body = client.post(ASK, json=off_topic, headers=world.student).get_json()
    assert (body["found"], body["sources"], body["status"]) == (False, [], "complete")
    assert body["answer"] == extractive.NOT_FOUND


def test_the_instructor_may_ask_too(client: FlaskClient, world: World) -> None:
    response = client.post(ASK, json=ask_body(world), headers=world.teacher)
    assert response.status_code == 200


def test_a_failed_answer_is_a_200_with_its_error_and_sources(
    client: FlaskClient, world: World, assistant: FakeAssistant
) -> None:
    assistant.model = ScriptedModel(fail_after=2)
    body = client.post(ASK, json=ask_body(world), headers=world.student).get_json()
    assert (body["status"], body["mode"]) == ("error", "model")
    assert body["error"] == MODEL_TIMED_OUT
    assert body["answer"] == "A decorator wraps "
    assert body["sources"] == [PASSAGE.model_dump(mode="json")]


# ----------------------------------------------------------------- bad input


LONGEST = ("x" * 99 + " ") * 19 + "x" * 100
"""2000 characters, words of 100: the search takes the first 500, cut at a space."""
assert len(LONGEST) == 2000


@pytest.mark.parametrize(
    ("question", "status"),
    [("", 422), ("   \n ", 422), ("x" * 2001, 422), ("bad\x00byte", 422), (LONGEST, 200)],
)
def test_questions_are_1_to_2000_characters(
    client: FlaskClient, world: World, question: str, status: int
) -> None:
    response = client.post(ASK, json=ask_body(world, question), headers=world.student)
    assert response.status_code == status, response.get_json()
    if status == 422:
        assert response.get_json()["details"][0]["field"] == "question"


def test_a_long_question_without_spaces_is_answered(client: FlaskClient, world: World) -> None:
    response = client.post(ASK, json=ask_body(world, "x" * 2000), headers=world.student)
    assert response.status_code == 200, response.get_json()


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
    tokens = list(extractive.pieces(EXTRACTIVE))
    assert names == ["sources", *["token"] * len(tokens), "done"]
    sources, done = events[0][1], events[-1][1]
    assert sources["sources"] == [PASSAGE.model_dump(mode="json")]
    assert (sources["found"], sources["mode"]) == (True, "extractive")
    assert [data["text"] for name, data in events if name == "token"] == tokens
    assert "".join(tokens) == EXTRACTIVE
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
    assistant.model = ScriptedModel(fail_after=1)
    events = sse_events(client.post(ASK, json=ask_body(world), headers={**world.student, **SSE}))
    assert [name for name, _ in events] == ["sources", "token", "error"]
    assert events[1][1] == {"text": "A decorator "}
    error = events[-1][1]
    assert error["message"] == MODEL_TIMED_OUT
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
    assistant.model = ScriptedModel([f"word{n} " for n in range(500)])
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
    assistant.model = ScriptedModel()  # four tokens, a tenth of a second apart
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
    assert again["found"] is True  # searched again with the previous question

    listed = client.get(CONVERSATIONS, headers=world.student).get_json()["items"]
    assert [c["conversation_id"] for c in listed] == [conversation_id]
    assert listed[0]["title"] == QUESTION
    one = client.get(f"{CONVERSATIONS}/{conversation_id}", headers=world.student).get_json()
    assert [t["question"] for t in one["turns"]] == [QUESTION, "and why?"]
    assert one["turns"][0]["answer"] == first["answer"]

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


# ----------------------------------------------------------------- the SSE caps


def test_a_streamed_answer_past_the_users_stream_cap_is_429_and_never_asked(
    make_app: Callable[..., Flask], world: World, assistant: FakeAssistant
) -> None:
    client = make_app(SSE_MAX_PER_USER=1).test_client()  # world's tokens hold on any test app
    first = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE}, buffered=False)
    assert first.status_code == 200  # open, holding the student's one stream slot

    refused = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert len(assistant.asked) == 1
    as_json = client.post(ASK, json=ask_body(world), headers=world.student)  # not a stream
    assert as_json.status_code == 200

    first.close()  # the slot is back
    again = client.post(ASK, json=ask_body(world), headers={**world.student, **SSE})
    assert again.status_code == 200
    sse_events(again)
