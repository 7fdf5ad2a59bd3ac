"""The assistant's promises, checked on FakeAssistant and on the real service, side by side.

The real one runs in this process, no broker: its nameko service class wired by hand on the
embedded MongoDB server (a fresh database per test) and Redis (db 15), called through JSON
(``LocalTransport``) as ``AssistantApi``. Both sides search the same FakeContent (a course on
decorators and ASN.1, and a bakery) and answer without a language model, or with the same
:class:`ScriptedModel` where a check gives them one.

Each check takes one side only (``assistant``), so tests/unit/test_service_contracts.py runs
the very same checks (:data:`CHECKS`) on the fake in the unit suite, without MongoDB or Redis.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from contracts.assistant import CANCEL_KEY, STREAM_KEY, AskRequest, AssistantApi
from contracts.content import ContentApi, IndexBatch, IndexedChunk
from contracts.errors import InvalidInput, NotFound
from mesh.typed import client
from services.assistant import extractive, store
from services.assistant.logic import Limits, Setup
from services.assistant.model import INSTRUCTIONS, ChatModel
from services.assistant.service import AssistantService
from tests.unit.service_fakes import (
    MODEL_TIMED_OUT,
    FakeAssistant,
    FakeContent,
    LocalTransport,
    ScriptedModel,
    wired,
)

pytestmark = pytest.mark.integration

COURSE, BAKERY = 1, 2
LESSONS = {
    COURSE: [
        (
            1,
            "A decorator wraps a function and returns the wrapper. Use functools.wraps on the "
            "wrapper to keep the name and docstring of the decorated function.",
        ),
        (1, "A decorator that takes arguments is a function that returns a decorator."),
        (3, "ASN.1 declarations are parsed by asn1_parse_file. BER and DER are its encodings."),
    ],
    BAKERY: [(2, "Bread dough should rise for an hour before baking.")],
}
WRAPS = "how do I keep the name and docstring of a decorated function?"
OFF_TOPIC = "how long should bread dough rise before baking?"
ANN, BOB = 5, 6


def seeded_content() -> FakeContent:
    """The content both sides search: each course's lessons, one chunk per text."""
    content = FakeContent()
    for course_id, texts in LESSONS.items():
        places: dict[int, int] = {}
        chunks = []
        for lesson_id, text in texts:
            index = places[lesson_id] = places.get(lesson_id, -1) + 1
            chunks.append(IndexedChunk(lesson_id=lesson_id, index=index, text=text, vector=[1.0]))
        content.index(IndexBatch(course_id=course_id, version=uuid.uuid4().hex, chunks=chunks))
    return content


@dataclass(frozen=True)
class AssistantSide:
    """One implementation: ``api`` its Protocol, ``store`` where it streams the answers' events
    (a Redis, or the fake's), ``use_model`` sets its chat model (None: extractive answers)."""

    kind: str
    api: AssistantApi
    transport: LocalTransport
    store: Any
    use_model: Callable[[ChatModel | None], None]

    def raw(self, method: str, *args: Any) -> Any:
        return self.transport.call("assistant", method, *args)

    def streamed(self, stream_id: str | None) -> list[tuple[str, dict[str, Any]]]:
        entries = self.store.xrange(STREAM_KEY.format(stream_id=stream_id))
        return [(fields["event"], json.loads(fields["data"])) for _, fields in entries]

    def cancel(self, stream_id: str | None) -> None:
        """Set the answer's cancel flag, as the gateway does when its client left."""
        self.store.set(CANCEL_KEY.format(stream_id=stream_id), "1", ex=60)


def fake_side() -> AssistantSide:
    fake = FakeAssistant(seeded_content())

    def use_model(model: ChatModel | None) -> None:
        fake.model = model

    return AssistantSide("fake", fake, LocalTransport(assistant=fake), fake.redis, use_model)


def real_side(db: Any, store_redis: redis.Redis) -> AssistantSide:
    content = client(ContentApi, "content", LocalTransport(content=seeded_content()))
    service = wired(
        AssistantService,
        context=None,
        mongo=db,
        redis=store_redis,
        content=content,
        answering=Setup(model=None, limits=Limits()),
    )

    def use_model(model: ChatModel | None) -> None:
        service.answering = Setup(model=model, limits=Limits())  # type: ignore[assignment]

    transport = LocalTransport(assistant=service)
    api = client(AssistantApi, "assistant", transport)
    return AssistantSide("real", api, transport, store_redis, use_model)


@pytest.fixture(params=["fake", "real"])
def assistant(request: pytest.FixtureRequest) -> Iterator[AssistantSide]:
    if request.param == "fake":
        yield fake_side()
        return
    mongo: MongoClient[dict[str, Any]] = MongoClient(
        request.getfixturevalue("mongo_uri"), tz_aware=True
    )
    name = f"it_{uuid.uuid4().hex[:8]}"
    db = mongo[name]
    store.prepare(db)
    url = request.getfixturevalue("redis_url")
    store_redis = redis.Redis.from_url(url, decode_responses=True)
    yield real_side(db, store_redis)
    store_redis.close()
    mongo.drop_database(name)
    mongo.close()


def asking(question: str = WRAPS, user_id: int = ANN, **extra: Any) -> AskRequest:
    fields = {"course_id": COURSE, "stream_id": uuid.uuid4().hex, **extra}
    return AskRequest(question=question, user_id=user_id, **fields)


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]


# ----------------------------------------------------------------- answers


def test_an_answer_quotes_and_cites_the_passages_close_to_the_question(
    assistant: AssistantSide,
) -> None:
    request = asking()
    answer = assistant.api.ask(request)
    assert (answer.mode, answer.found, answer.status, answer.error) == (
        "extractive",
        True,
        "complete",
        None,
    )
    assert [(p.lesson_id, p.position) for p in answer.sources] == [(1, 0), (1, 1)]  # not ASN.1
    assert all(p.similarity is not None and p.similarity >= 0.30 for p in answer.sources)
    assert answer.answer == extractive.compose(WRAPS, answer.sources)
    assert "> Use functools.wraps on the wrapper" in answer.answer
    assert "Sources: [1] lesson 1, passage 1" in answer.answer

    events = assistant.streamed(request.stream_id)
    tokens = [data["text"] for name, data in events if name == "token"]
    assert names(events) == ["sources", *["token"] * len(tokens), "done"]
    assert "".join(tokens) == answer.answer
    assert events[0][1] == {
        "conversation_id": answer.conversation_id,
        "mode": "extractive",
        "found": True,
        "sources": [p.model_dump(mode="json") for p in answer.sources],
    }
    assert events[-1][1] == {
        "conversation_id": answer.conversation_id,
        "mode": "extractive",
        "found": True,
    }


def test_a_question_the_course_does_not_cover_is_not_found(assistant: AssistantSide) -> None:
    request = asking(OFF_TOPIC)
    answer = assistant.api.ask(request)
    assert (answer.found, answer.sources, answer.status) == (False, [], "complete")
    assert answer.answer == extractive.NOT_FOUND
    events = assistant.streamed(request.stream_id)
    assert events[0] == (
        "sources",
        {
            "conversation_id": answer.conversation_id,
            "mode": "extractive",
            "found": False,
            "sources": [],
        },
    )
    assert names(events)[-1] == "done" and events[-1][1]["found"] is False


def test_an_answer_without_a_stream_is_the_same_answer(assistant: AssistantSide) -> None:
    streamed = assistant.api.ask(asking())
    whole = assistant.api.ask(asking(stream_id=None))
    assert whole.model_dump(exclude={"conversation_id"}) == streamed.model_dump(
        exclude={"conversation_id"}
    )


def test_a_cancelled_answer_stops_and_is_kept_as_cancelled(assistant: AssistantSide) -> None:
    request = asking()
    assistant.cancel(request.stream_id)
    answer = assistant.api.ask(request)
    assert (answer.status, answer.answer, answer.found) == ("cancelled", "", True)
    assert names(assistant.streamed(request.stream_id)) == ["sources"]
    (turn,) = assistant.api.get_conversation(answer.conversation_id, ANN).turns
    assert (turn.status, turn.answer) == ("cancelled", "")


# ----------------------------------------------------------------- the model path


def test_a_model_s_tokens_are_the_answer(assistant: AssistantSide) -> None:
    model = ScriptedModel()
    assistant.use_model(model)
    request = asking()
    answer = assistant.api.ask(request)
    assert (answer.mode, answer.status, answer.answer) == (
        "model",
        "complete",
        "A decorator wraps a function [1].",
    )
    events = assistant.streamed(request.stream_id)
    assert [data["text"] for name, data in events if name == "token"] == model.pieces
    assert events[-1] == (
        "done",
        {"conversation_id": answer.conversation_id, "mode": "model", "found": True},
    )
    ((system, *_rest),) = model.chats
    assert system["role"] == "system"
    assert str(system.get("content", "")).startswith(INSTRUCTIONS)
    assert "[1] (lesson 1, passage 1)" in str(system.get("content", ""))


def test_a_model_that_fails_gives_an_answer_with_status_error(assistant: AssistantSide) -> None:
    assistant.use_model(ScriptedModel(fail_after=1))
    request = asking()
    answer = assistant.api.ask(request)
    assert (answer.status, answer.error, answer.answer) == (
        "error",
        MODEL_TIMED_OUT,
        "A decorator ",
    )
    events = assistant.streamed(request.stream_id)
    assert names(events) == ["sources", "token", "error"]
    assert events[-1][1] == {
        "conversation_id": answer.conversation_id,
        "message": MODEL_TIMED_OUT,
        "sources": [p.model_dump(mode="json") for p in answer.sources],
    }
    (turn,) = assistant.api.get_conversation(answer.conversation_id, ANN).turns
    assert (turn.status, turn.error, turn.answer) == ("error", MODEL_TIMED_OUT, "A decorator ")


def test_no_model_call_when_nothing_is_found(assistant: AssistantSide) -> None:
    model = ScriptedModel()
    assistant.use_model(model)
    answer = assistant.api.ask(asking(OFF_TOPIC))
    assert (answer.mode, answer.found, answer.answer) == ("model", False, extractive.NOT_FOUND)
    assert model.chats == []


# ----------------------------------------------------------------- conversations


def test_a_follow_up_continues_the_conversation_and_is_searched_with_its_question(
    assistant: AssistantSide,
) -> None:
    first = assistant.api.ask(asking())
    follow_up = assistant.api.ask(asking("and why?", conversation_id=first.conversation_id))
    assert follow_up.conversation_id == first.conversation_id
    assert follow_up.found  # "and why?" alone finds nothing: searched with the previous question

    conversation = assistant.api.get_conversation(first.conversation_id, ANN)
    assert (conversation.title, conversation.course_id) == (WRAPS, COURSE)
    assert [t.question for t in conversation.turns] == [WRAPS, "and why?"]
    assert [t.answer for t in conversation.turns] == [first.answer, follow_up.answer]
    assert conversation.turns[0].sources == first.sources
    assert all(t.asked_at <= t.answered_at for t in conversation.turns)
    assert conversation.created_at <= conversation.turns[0].answered_at
    assert conversation.updated_at == conversation.turns[-1].answered_at


def test_a_conversation_is_its_owner_s_and_its_course_s(assistant: AssistantSide) -> None:
    first = assistant.api.ask(asking())
    for call in (
        lambda: assistant.api.get_conversation(first.conversation_id, BOB),
        lambda: assistant.api.get_conversation(uuid.uuid4().hex, ANN),
        lambda: assistant.api.ask(asking("and?", BOB, conversation_id=first.conversation_id)),
        lambda: assistant.api.ask(
            asking("and?", course_id=BAKERY, conversation_id=first.conversation_id)
        ),
        lambda: assistant.api.ask(asking("and?", conversation_id=uuid.uuid4().hex)),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert str(caught.value) == store.NOT_FOUND
    assert len(assistant.api.get_conversation(first.conversation_id, ANN).turns) == 1


def test_the_list_is_the_user_s_most_recently_active_first(assistant: AssistantSide) -> None:
    older = assistant.api.ask(asking())
    time.sleep(0.005)  # distinct milliseconds, as MongoDB keeps them
    newer = assistant.api.ask(asking("what does a decorator that takes arguments return?"))
    time.sleep(0.005)
    bobs = assistant.api.ask(asking(user_id=BOB))
    time.sleep(0.005)
    assert [c.conversation_id for c in assistant.api.list_conversations(ANN)] == [
        newer.conversation_id,
        older.conversation_id,
    ]
    assistant.api.ask(asking("and why?", conversation_id=older.conversation_id))
    listed = assistant.api.list_conversations(ANN)
    assert [c.conversation_id for c in listed] == [older.conversation_id, newer.conversation_id]
    assert [c.title for c in listed] == [
        WRAPS,
        "what does a decorator that takes arguments return?",
    ]
    assert [c.conversation_id for c in assistant.api.list_conversations(BOB)] == [
        bobs.conversation_id
    ]
    assert assistant.api.list_conversations(99) == []


def test_a_title_is_the_first_question_cut_to_200_characters(assistant: AssistantSide) -> None:
    question = " ".join(["decorator"] * 60)  # 599 characters
    answer = assistant.api.ask(asking(question))
    (summary,) = assistant.api.list_conversations(ANN)
    assert summary.title == question[: store.TITLE_MAX].rstrip()  # a contract strips its text
    assert assistant.api.get_conversation(answer.conversation_id, ANN).turns[0].question == question


# ----------------------------------------------------------------- the wire

HEX = "a" * 32
QUESTION = {"course_id": COURSE, "question": WRAPS, "user_id": ANN}
BROKEN: list[tuple[str, list[Any], list[str]]] = [
    ("ask", [{**QUESTION, "question": ""}], ["request.question"]),
    ("ask", [{**QUESTION, "question": "   "}], ["request.question"]),
    ("ask", [{**QUESTION, "question": "x" * 2001}], ["request.question"]),
    ("ask", [{**QUESTION, "question": "nul\x00"}], ["request.question"]),
    ("ask", [{**QUESTION, "conversation_id": "NOT-HEX"}], ["request.conversation_id"]),
    ("ask", [{**QUESTION, "stream_id": HEX.upper()}], ["request.stream_id"]),
    ("ask", [{**QUESTION, "course_id": "1"}], ["request.course_id"]),
    ("ask", [{**QUESTION, "user_id": 0}], ["request.user_id"]),
    ("ask", [{"course_id": COURSE, "question": WRAPS}], ["request.user_id"]),
    ("ask", [{**QUESTION, "extra": 1}], ["request.extra"]),
    ("ask", [WRAPS], ["request"]),
    ("list_conversations", ["5"], ["user_id"]),
    ("list_conversations", [True], ["user_id"]),
    ("get_conversation", ["NOT-HEX", ANN], ["conversation_id"]),
    ("get_conversation", [HEX, 0], ["user_id"]),
    ("get_conversation", [HEX], []),
]


def test_the_assistant_refuses_a_payload_that_breaks_the_contract(
    assistant: AssistantSide,
) -> None:
    for method, args, fields in BROKEN:
        with pytest.raises(InvalidInput) as caught:
            assistant.raw(method, *args)
        assert [d["field"] for d in caught.value.details or []] == fields, (method, args)
    assert assistant.api.list_conversations(ANN) == []  # nothing stored


CHECKS: list[Callable[[AssistantSide], None]] = [
    test_an_answer_quotes_and_cites_the_passages_close_to_the_question,
    test_a_question_the_course_does_not_cover_is_not_found,
    test_an_answer_without_a_stream_is_the_same_answer,
    test_a_cancelled_answer_stops_and_is_kept_as_cancelled,
    test_a_model_s_tokens_are_the_answer,
    test_a_model_that_fails_gives_an_answer_with_status_error,
    test_no_model_call_when_nothing_is_found,
    test_a_follow_up_continues_the_conversation_and_is_searched_with_its_question,
    test_a_conversation_is_its_owner_s_and_its_course_s,
    test_the_list_is_the_user_s_most_recently_active_first,
    test_a_title_is_the_first_question_cut_to_200_characters,
    test_the_assistant_refuses_a_payload_that_breaks_the_contract,
]
"""Every check of this module; tests/unit/test_service_contracts.py runs them on the fake."""
