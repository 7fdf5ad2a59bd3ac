"""The assistant for real, in one process: the content service on the bundled MiniLM model and
an in-memory Qdrant index, the assistant service wired by hand on the embedded MongoDB server
and Redis (db 15), called through typed clients over JSON; the model path against the local
OpenAI-compatible FakeOpenAI; and the gateway's SSE relay on top of it all.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient
from pymongo.database import Database
from qdrant_client import QdrantClient
from sseclient import SSEClient

from contracts.assistant import CANCEL_KEY, STREAM_KEY, Answer, AskRequest, AssistantApi
from contracts.content import ContentApi, IndexBatch, IndexedChunk, SearchRequest
from contracts.errors import NotFound
from contracts.users import UserOut
from gateway.app import create_app
from gateway.auth import issue_pair
from gateway.deps import Services
from gateway.rpc_pool import RpcClient
from mesh.embedding import LocalEmbedder
from mesh.settings import Settings
from mesh.typed import client
from services.assistant import extractive, store
from services.assistant.logic import Limits, Setup
from services.assistant.model import INSTRUCTIONS, ChatModel, make_model
from services.assistant.service import AssistantService
from services.content.index import ContentIndex
from services.content.provider import OffloadedIndex
from services.content.service import ContentService
from tests.integration.test_content_index import ASN1_LESSON, BREAD_LESSON, DECORATOR_LESSON
from tests.support.openai_server import FakeOpenAI
from tests.unit.service_fakes import FakeCourses, LocalTransport, wired

pytestmark = pytest.mark.integration

COURSE, BAKERY = 1, 2  # the first two courses of a fresh FakeCourses
MIN_SIMILARITY = 0.30
WRAPS = "how do I keep the name and docstring of a decorated function?"
OFF_TOPIC = "how long should bread dough rise before baking?"
# Measured with all-MiniLM-L6-v2 against the course (decorators + ASN.1): see the report.
ON_TOPIC_QUESTIONS = (
    WRAPS,
    "how do I write a decorator that takes arguments?",
    "which function parses a file of ASN.1 declarations?",
    "what is the difference between BER and DER?",
    "how is the memory of a decoded value freed?",
    "asn1_parse_file",
)
OFF_TOPIC_QUESTIONS = (
    OFF_TOPIC,
    "who won the football world cup in 2018?",
    "what is the capital of France?",
    "how do I change a car tyre?",
    "what are the symptoms of the flu?",
    "how do I sort a list in javascript?",
)


def inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    model = LocalEmbedder()
    model.load()
    return model


@pytest.fixture(scope="module")
def content(embedder: LocalEmbedder) -> Iterator[ContentApi]:
    """The content service on a real index: the course (decorators, ASN.1) and a bakery."""
    qdrant = QdrantClient(":memory:")
    index = ContentIndex(qdrant, embedder)
    index.ensure_collection()
    service = wired(ContentService, context=None, chunks=OffloadedIndex(index, offload=inline))
    api = client(ContentApi, "content", LocalTransport(content=service))
    version = uuid.uuid4().hex
    for course_id, lessons in (
        (COURSE, {1: DECORATOR_LESSON, 3: ASN1_LESSON}),
        (BAKERY, {2: BREAD_LESSON}),
    ):
        api.index(batch(embedder, course_id, version, lessons))
    yield api
    qdrant.close()


def batch(
    embedder: LocalEmbedder, course_id: int, version: str, lessons: dict[int, list[str]]
) -> IndexBatch:
    texts = [(lesson, i, text) for lesson, parts in lessons.items() for i, text in enumerate(parts)]
    vectors = embedder.embed([text for _, _, text in texts])
    chunks = [
        IndexedChunk(lesson_id=lesson, index=i, locator=f"§{i + 1}", text=text, vector=vector)
        for (lesson, i, text), vector in zip(texts, vectors, strict=True)
    ]
    return IndexBatch(course_id=course_id, version=version, chunks=chunks)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    mongo = MongoClient(settings.mongo_uri, tz_aware=True)
    database = mongo[settings.mongo_db]
    store.prepare(database)
    yield database
    mongo.drop_database(settings.mongo_db)
    mongo.close()


@pytest.fixture
def store_redis(settings: Settings) -> Iterator[redis.Redis]:
    client_ = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client_
    client_.close()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(stall_seconds=5.0) as server:
        yield server


MakeService = Callable[..., AssistantService]
MakeAssistant = Callable[..., AssistantApi]


@pytest.fixture
def make_service(
    content: ContentApi, db: Database, store_redis: redis.Redis
) -> Iterator[MakeService]:
    """A real assistant service wired by hand; ``model`` a chat model (else extractive)."""
    models: list[ChatModel] = []

    def build(model: ChatModel | None = None, **limits: Any) -> AssistantService:
        if model is not None:
            models.append(model)
        setup = Setup(model=model, limits=Limits(min_similarity=MIN_SIMILARITY, **limits))
        return wired(
            AssistantService,
            context=None,
            mongo=db,
            redis=store_redis,
            content=content,
            answering=setup,
        )

    yield build
    for model in models:
        model.close()


@pytest.fixture
def make_assistant(make_service: MakeService) -> MakeAssistant:
    """A typed client of a real assistant service, over JSON."""

    def build(model: ChatModel | None = None, **limits: Any) -> AssistantApi:
        service = make_service(model, **limits)
        return client(AssistantApi, "assistant", LocalTransport(assistant=service))

    return build


def chat_model(server: FakeOpenAI, timeout: float = 5.0) -> ChatModel:
    return make_model(
        base_url=server.base_url, api_key="k", model="fake-model", timeout=timeout, max_tokens=200
    )


def streamed(store_redis: redis.Redis, stream_id: str) -> list[tuple[str, dict[str, Any]]]:
    entries = store_redis.xrange(STREAM_KEY.format(stream_id=stream_id))
    return [(fields["event"], json.loads(fields["data"])) for _, fields in entries]  # type: ignore[union-attr]


def asking(question: str, user_id: int = 1, **extra: Any) -> AskRequest:
    return AskRequest(
        course_id=COURSE, question=question, user_id=user_id, stream_id=uuid.uuid4().hex, **extra
    )


# ----------------------------------------------------------------- the threshold


def test_the_threshold_parts_on_topic_from_off_topic(content: ContentApi) -> None:
    """ASSISTANT_MIN_SIMILARITY's default, measured: the best passage's cosine similarity."""

    def best(question: str) -> float:
        found = content.search(SearchRequest(course_id=COURSE, q=question, limit=5))
        return max(p.similarity or 0.0 for p in found)

    on = {q: round(best(q), 3) for q in ON_TOPIC_QUESTIONS}
    off = {q: round(best(q), 3) for q in OFF_TOPIC_QUESTIONS}
    print(f"\non topic: {sorted(on.values())}\noff topic: {sorted(off.values())}")
    assert min(on.values()) >= MIN_SIMILARITY > max(off.values())


# ----------------------------------------------------------------- extractive answers


def test_the_right_passage_is_quoted_and_cited(
    make_assistant: MakeAssistant, store_redis: redis.Redis
) -> None:
    request = asking(WRAPS)
    answer = make_assistant().ask(request)
    assert (answer.mode, answer.found, answer.status) == ("extractive", True, "complete")
    first = answer.sources[0]
    assert (first.lesson_id, first.locator) == (1, "§3")
    assert "functools.wraps" in first.text
    assert all(p.similarity is not None and p.similarity >= MIN_SIMILARITY for p in answer.sources)
    assert answer.answer.startswith(extractive.PREAMBLE)
    assert "functools.wraps on the wrapper" in answer.answer
    assert "[1]" in answer.answer and "[1] lesson 1, §3" in answer.answer

    events = streamed(store_redis, request.stream_id or "")
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    assert events[0][1]["sources"][0]["lesson_id"] == 1
    assert "".join(data["text"] for name, data in events if name == "token") == answer.answer
    assert events[-1][1]["conversation_id"] == answer.conversation_id
    assert store_redis.ttl(STREAM_KEY.format(stream_id=request.stream_id)) > 0


def test_an_off_topic_question_is_not_found_in_the_course(
    make_assistant: MakeAssistant, store_redis: redis.Redis
) -> None:
    request = asking(OFF_TOPIC)
    answer = make_assistant().ask(request)
    assert (answer.found, answer.sources, answer.status) == (False, [], "complete")
    assert answer.answer.startswith("Not found in this course")
    events = streamed(store_redis, request.stream_id or "")
    assert events[0] == (
        "sources",
        {
            "conversation_id": answer.conversation_id,
            "mode": "extractive",
            "found": False,
            "sources": [],
        },
    )


def test_conversations_keep_their_turns_for_their_owner(make_assistant: MakeAssistant) -> None:
    assistant = make_assistant()
    first = assistant.ask(asking(WRAPS, user_id=5))
    follow_up = assistant.ask(
        asking("and one that takes arguments?", user_id=5, conversation_id=first.conversation_id)
    )
    assert follow_up.conversation_id == first.conversation_id
    assert follow_up.found  # searched with the previous question, as the follow-up alone is vague

    conversation = assistant.get_conversation(first.conversation_id, 5)
    assert conversation.title == WRAPS
    assert [t.question for t in conversation.turns] == [WRAPS, "and one that takes arguments?"]
    assert conversation.turns[0].answer == first.answer
    assert conversation.turns[0].sources == first.sources
    assert conversation.turns[0].asked_at <= conversation.turns[0].answered_at
    assert conversation.updated_at >= conversation.turns[1].answered_at

    other = assistant.ask(asking(OFF_TOPIC, user_id=5))
    listed = assistant.list_conversations(5)
    assert [c.conversation_id for c in listed] == [other.conversation_id, first.conversation_id]
    assert assistant.list_conversations(6) == []
    with pytest.raises(NotFound):
        assistant.get_conversation(first.conversation_id, 6)
    with pytest.raises(NotFound):  # someone else's conversation
        assistant.ask(asking("and?", user_id=6, conversation_id=first.conversation_id))
    with pytest.raises(NotFound):  # the same owner, another course
        assistant.ask(
            AskRequest(
                course_id=BAKERY, question="and?", user_id=5, conversation_id=first.conversation_id
            )
        )


def test_a_cancelled_answer_stops_and_is_kept_as_cancelled(
    make_assistant: MakeAssistant, store_redis: redis.Redis
) -> None:
    request = asking(WRAPS)
    store_redis.set(CANCEL_KEY.format(stream_id=request.stream_id), "1", ex=60)
    assistant = make_assistant()
    answer = assistant.ask(request)
    assert (answer.status, answer.answer) == ("cancelled", "")
    assert [name for name, _ in streamed(store_redis, request.stream_id or "")] == ["sources"]
    (turn,) = assistant.get_conversation(answer.conversation_id, 1).turns
    assert turn.status == "cancelled"


# ----------------------------------------------------------------- the model path


def test_model_tokens_arrive_in_order_and_follow_ups_carry_the_history(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_redis: redis.Redis
) -> None:
    assistant = make_assistant(chat_model(openai_server))
    request = asking(WRAPS)
    answer = assistant.ask(request)
    expected = "Echo: " + " ".join(WRAPS.split()[:8])
    assert (answer.mode, answer.status, answer.answer) == ("model", "complete", expected)
    events = streamed(store_redis, request.stream_id or "")
    tokens = [data["text"] for name, data in events if name == "token"]
    assert tokens == ["Echo:", *(f" {w}" for w in WRAPS.split()[:8])]
    assert [name for name, _ in events][-1] == "done"

    (sent,) = openai_server.requests_to("/v1/chat/completions")
    assert sent.body["stream"] is True and sent.body["model"] == "fake-model"
    system = sent.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(INSTRUCTIONS)
    assert "[1] (lesson 1, §3)" in system["content"] and "functools.wraps" in system["content"]

    assistant.ask(asking("and with arguments?", conversation_id=answer.conversation_id))
    follow_up = openai_server.requests_to("/v1/chat/completions")[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in follow_up[1:]] == [
        ("user", WRAPS),
        ("assistant", expected),
        ("user", "and with arguments?"),
    ]


@pytest.mark.parametrize("mode", ["stream_error", "break_stream"])
def test_an_upstream_failure_mid_stream_ends_with_an_error_and_the_passages(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_redis: redis.Redis, mode: Any
) -> None:
    openai_server.set_mode(mode)
    assistant = make_assistant(chat_model(openai_server))
    request = asking(WRAPS)
    answer = assistant.ask(request)
    assert (answer.status, answer.answer) == ("error", "Echo:")
    events = streamed(store_redis, request.stream_id or "")
    assert [name for name, _ in events] == ["sources", "token", "error"]
    error = events[-1][1]
    assert error["message"] == answer.error
    assert "language model" in error["message"] and "Traceback" not in error["message"]
    assert error["sources"] == [p.model_dump(mode="json") for p in answer.sources]
    assert error["sources"][0]["lesson_id"] == 1
    (turn,) = assistant.get_conversation(answer.conversation_id, 1).turns
    assert (turn.status, turn.error, turn.answer) == ("error", answer.error, "Echo:")


def test_an_upstream_http_error_is_an_error_event(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_redis: redis.Redis
) -> None:
    openai_server.set_mode("error")
    request = asking(WRAPS)
    answer = make_assistant(chat_model(openai_server)).ask(request)
    assert answer.error == "the language model failed (HTTP 500)"
    assert [name for name, _ in streamed(store_redis, request.stream_id or "")] == [
        "sources",
        "error",
    ]


def test_a_stalled_upstream_is_an_error_after_the_timeout(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_redis: redis.Redis
) -> None:
    openai_server.set_mode("stall")
    assistant = make_assistant(chat_model(openai_server, timeout=0.5))
    request = asking(WRAPS)
    started = time.monotonic()
    answer = assistant.ask(request)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3, elapsed
    assert answer.error == "the language model did not answer in time"
    events = streamed(store_redis, request.stream_id or "")
    assert [name for name, _ in events] == ["sources", "error"]
    assert events[-1][1]["sources"][0]["lesson_id"] == 1


def test_no_model_call_when_nothing_is_found(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    answer = make_assistant(chat_model(openai_server)).ask(asking(OFF_TOPIC))
    assert (answer.mode, answer.found) == ("model", False)
    assert answer.answer.startswith("Not found in this course")
    assert openai_server.requests_to("/v1/chat/completions") == []


# ----------------------------------------------------------------- through the gateway


class NoRpc(RpcClient):
    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected raw RPC {service}.{method}")

    def close(self) -> None:
        pass


_users = itertools.count(1000)


def test_the_gateway_streams_the_real_answer(
    make_service: MakeService, store_redis: redis.Redis, tmp_path: Path
) -> None:
    """SSE end to end on real parts but the courses service; prints the latencies."""
    courses = FakeCourses()
    teacher, student = next(_users), next(_users)
    course = courses.add(teacher, "Python", published=True)
    assert course.id == COURSE
    courses.enroll(course.id, student)
    transport = LocalTransport(courses=courses, assistant=make_service())
    app = create_app(
        {
            "TESTING": True,
            "RATELIMIT_STORAGE_URI": "memory://",
            "RATELIMIT_STORAGE_OPTIONS": {},
            "UPLOADS_PATH": str(tmp_path),
            "SSE_POLL_SECONDS": 0.05,
        },
        rpc=NoRpc(),
        redis=store_redis,
        services=Services.over(transport),
    )
    user = UserOut(id=student, email="s@example.com", name="S", created_at=datetime.now(UTC))
    with app.app_context():
        headers = {"Authorization": f"Bearer {issue_pair(user).access_token}"}
    web = app.test_client()
    body = {"course_id": course.id, "question": WRAPS}

    firsts, dones = [], []
    for _ in range(5):
        started = time.perf_counter()
        response = web.post(
            "/api/assistant/ask", json=body, headers={**headers, "Accept": "text/event-stream"}
        )
        names = []
        for event in SSEClient(_Chunks(response)).events():
            if not names:
                firsts.append(time.perf_counter() - started)
            names.append(event.event)
        dones.append(time.perf_counter() - started)
        assert names[0] == "sources" and names[-1] == "done", names
    print(
        f"\nfirst SSE event: {[round(s * 1000, 1) for s in firsts]} ms; "
        f"done: {[round(s * 1000, 1) for s in dones]} ms"
    )
    assert max(firsts) < 2.0

    plain = web.post("/api/assistant/ask", json=body, headers=headers)
    assert plain.status_code == 200
    assert Answer.model_validate(plain.get_json()).sources[0].lesson_id == 1


class _Chunks:
    def __init__(self, response: Any) -> None:
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.response.iter_encoded())

    def close(self) -> None:
        self.response.close()
