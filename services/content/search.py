"""What the content service does: search a course's chunks, and keep its index current."""

from __future__ import annotations

from typing import Protocol

from contracts.content import IndexBatch, Passage, SearchRequest
from services.content.index import Chunk, Hit


class Index(Protocol):
    def search(self, course_id: int, query: str, limit: int) -> list[Hit]: ...
    def upsert(
        self, course_id: int, version: str, chunks: list[Chunk], vectors: list[list[float]]
    ) -> None: ...
    def drop_other_versions(self, course_id: int, keep_version: str) -> None: ...
    def count(self, course_id: int) -> int: ...


def search(index: Index, request: SearchRequest) -> list[Passage]:
    """The best passages of the course for the query: dense and keyword ranks fused, each
    with its cosine similarity to the query."""
    hits = index.search(request.course_id, request.q, request.limit)
    return [
        Passage(
            lesson_id=int(hit.lesson_id),
            position=hit.position,
            locator=hit.locator,
            text=hit.text,
            score=hit.score,
            similarity=hit.similarity,
        )
        for hit in hits
    ]


def store(index: Index, batch: IndexBatch) -> int:
    """Store a batch of embedded chunks; the same chunk again overwrites its point."""
    chunks = [
        Chunk(
            lesson_id=c.lesson_id, index=c.index, position=c.index, locator=c.locator, text=c.text
        )
        for c in batch.chunks
    ]
    index.upsert(batch.course_id, batch.version, chunks, [c.vector for c in batch.chunks])
    return len(chunks)


def activate(index: Index, course_id: int, version: str) -> int:
    """Keep only ``version`` of the course's chunks; how many remain."""
    index.drop_other_versions(course_id, version)
    return index.count(course_id)
