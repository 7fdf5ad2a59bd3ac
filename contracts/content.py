"""Content: the search index of course material (dense vectors plus keywords)."""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import Field, StrictInt, StringConstraints

from contracts.base import Contract, Id, Text

QUERY_MAX = 500
Query = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=QUERY_MAX)
]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
INDEX_BATCH_MAX = 256


class SearchRequest(Contract):
    course_id: Id
    q: Query
    limit: Annotated[StrictInt, Field(ge=1, le=20)] = 5


class Passage(Contract):
    """A chunk of a lesson that matched: where it is, and how well it matched."""

    lesson_id: int
    position: int = Field(description="The chunk's index within its lesson.")
    locator: str | None = Field(None, description="A page or timestamp, when known.")
    text: str
    score: float
    similarity: float | None = Field(
        None, description="Cosine similarity of the passage to the query, when known."
    )


class IndexedChunk(Contract):
    """One chunk of a lesson with its dense vector; ``index`` is its place in the lesson."""

    lesson_id: int
    index: int = Field(ge=0)
    locator: str | None = None
    text: str
    vector: list[float]


class IndexBatch(Contract):
    """Chunks of one course, embedded by the pipeline, for the index to store."""

    course_id: Id
    version: Version
    chunks: list[IndexedChunk] = Field(max_length=INDEX_BATCH_MAX)


class ContentApi(Protocol):
    """The content service's RPC surface (service name ``content``): it owns the index."""

    def search(self, request: SearchRequest) -> list[Passage]:
        """Hybrid search (dense + keywords, fused by rank) within one course."""
        ...

    def index(self, batch: IndexBatch) -> int:
        """Store (or overwrite) the batch's chunks; idempotent. Answers how many."""
        ...

    def activate(self, course_id: Id, version: Version) -> int:
        """Drop the course's chunks of every other version; answers how many remain."""
        ...

    def count(self, course_id: Id) -> int: ...
