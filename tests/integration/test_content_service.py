"""The content service end to end in one process: its entrypoints, the real index in
local-mode Qdrant and the bundled model, called through a typed client over JSON."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from contracts.content import ContentApi, IndexBatch, IndexedChunk, SearchRequest
from contracts.errors import InvalidInput
from mesh.embedding import LocalEmbedder
from mesh.typed import client
from services.content.index import ContentIndex
from services.content.provider import OffloadedIndex
from services.content.service import ContentService
from tests.unit.service_fakes import LocalTransport, wired

pytestmark = pytest.mark.integration

LESSONS = {
    1: [
        "A decorator takes a function and returns a wrapper that adds behaviour around it.",
        "functools.wraps keeps the wrapped function's name and docstring.",
    ],
    2: [
        "Knead the dough for ten minutes, then let it rise in a warm place for an hour.",
        "Bake the loaf at 220 degrees until the crust is golden.",
    ],
}


def inline(fn: object, *args: object) -> object:
    return fn(*args)  # type: ignore[operator]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    model = LocalEmbedder()
    model.load()
    return model


@pytest.fixture
def transport(embedder: LocalEmbedder) -> Iterator[LocalTransport]:
    qdrant = QdrantClient(":memory:")
    index = ContentIndex(qdrant, embedder)
    index.ensure_collection()
    service = wired(ContentService, context=None, chunks=OffloadedIndex(index, offload=inline))
    yield LocalTransport(content=service)
    qdrant.close()


@pytest.fixture
def content(transport: LocalTransport) -> ContentApi:
    return client(ContentApi, "content", transport)


def batch(
    embedder: LocalEmbedder, course_id: int, version: str, lessons: dict[int, list[str]]
) -> IndexBatch:
    texts = [(lesson, i, text) for lesson, parts in lessons.items() for i, text in enumerate(parts)]
    vectors = embedder.embed([text for _, _, text in texts])
    chunks = [
        IndexedChunk(lesson_id=lesson, index=i, locator=None, text=text, vector=vector)
        for (lesson, i, text), vector in zip(texts, vectors, strict=True)
    ]
    return IndexBatch(course_id=course_id, version=version, chunks=chunks)


def test_index_search_and_activate(content: ContentApi, embedder: LocalEmbedder) -> None:
    first = uuid.uuid4().hex
    assert content.index(batch(embedder, 7, first, LESSONS)) == 4
    assert content.index(batch(embedder, 7, first, LESSONS)) == 4  # idempotent
    assert content.count(7) == 4
    found = content.search(SearchRequest(course_id=7, q="how do I wrap a function", limit=2))
    assert [passage.lesson_id for passage in found] == [1, 1]
    assert content.search(SearchRequest(course_id=8, q="wrap a function")) == []

    second = uuid.uuid4().hex
    content.index(batch(embedder, 7, second, {1: LESSONS[1]}))
    assert content.activate(7, second) == 2  # the bread lesson is gone with the old version
    remaining = content.search(SearchRequest(course_id=7, q="bake bread", limit=5))
    assert {passage.lesson_id for passage in remaining} == {1}


def test_bad_input_is_refused_at_the_entrypoint(transport: LocalTransport) -> None:
    with pytest.raises(InvalidInput):
        transport.call("content", "search", {"course_id": 7, "q": "", "limit": 5})
    with pytest.raises(InvalidInput):
        transport.call("content", "activate", 7, "not-a-version")
