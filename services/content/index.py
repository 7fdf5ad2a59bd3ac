"""The vector index of course content: one Qdrant collection, dense + keyword vectors.

Each point is one chunk of a lesson, with a dense vector (the embedder's) named "dense" and
a BM25 sparse vector named "keywords". ``search`` fuses both rankings with reciprocal rank
fusion inside Qdrant, and gives each hit its cosine similarity to the query too (a fused score
is a rank, useless to tell a close passage from a far one). Free of Nameko and Dramatiq:
callers wrap it in their providers.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from qdrant_client import QdrantClient, models

from mesh.embedding import Embedder, native_lock
from services.content.sparse import SparseEncoder

DEFAULT_COLLECTION = "course_chunks"
DENSE = "dense"
KEYWORDS = "keywords"
# Fixed forever: point ids derive from it, so changing it would duplicate every chunk.
POINT_NAMESPACE = uuid.UUID("5b0e7f3c-2d4a-5c1e-9f60-8a7b3c2d1e0f")


class ChunkLike(Protocol):
    """What ``upsert`` reads from a chunk (the chunker's own type fits)."""

    @property
    def lesson_id(self) -> int | str: ...

    @property
    def index(self) -> int: ...

    @property
    def position(self) -> int: ...

    @property
    def locator(self) -> str | None: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Chunk:
    """A passage of a lesson: its rank in the lesson, where it starts, a human locator."""

    lesson_id: int | str
    index: int
    position: int
    locator: str | None
    text: str


@dataclass(frozen=True)
class Hit:
    """A chunk that matched: ``score`` ranks it, ``similarity`` is its cosine to the query
    (set by ``search``; None where unknown)."""

    lesson_id: int | str
    position: int
    locator: str | None
    text: str
    score: float
    similarity: float | None = None


class CollectionMismatch(RuntimeError):
    """The collection exists with a dense size other than the embedder's: re-index needed."""


def point_id(course_id: int, lesson_id: int | str, chunk_index: int) -> str:
    """The chunk's stable point id, so re-indexing overwrites instead of duplicating."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{course_id}/{lesson_id}/{chunk_index}"))


def course_filter(course_id: int) -> models.Filter:
    return models.Filter(must=[_match("course_id", course_id)])


def _match(key: str, value: int | str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


class ContentIndex:
    """Course chunks in Qdrant: upsert by version, drop, count and hybrid search.

    With a Qdrant server, every course shares one collection and each query is filtered to
    its course through a payload index (Qdrant's way to hold many tenants). Local mode has no
    payload index: it checks a filter point by point in Python, so a course's search would
    slow down with every other course's chunks (130 ms with three 100-page courses against
    30 ms with one). There each course gets a collection of its own, ``<collection>_<id>``,
    and no filter is needed. Local mode is not thread-safe either: this object serialises its
    calls there, so share one instance between the threads of a process.
    """

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        *,
        collection: str = DEFAULT_COLLECTION,
        encoder: SparseEncoder | None = None,
        prefetch_limit: int = 20,
        per_course: bool | None = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = collection
        self.encoder = encoder or SparseEncoder()
        self.prefetch_limit = prefetch_limit
        self._lock = native_lock()
        self.per_course = self.is_local if per_course is None else per_course

    def name(self, course_id: int) -> str:
        """The collection holding the course's chunks."""
        return f"{self.collection}_{course_id}" if self.per_course else self.collection

    def scope(self, course_id: int) -> models.Filter | None:
        """The filter that keeps a query to the course (none in a course's own collection)."""
        return None if self.per_course else course_filter(course_id)

    def ensure_collection(self) -> None:
        """Create the shared collection and its payload indexes unless they exist
        (idempotent); per-course collections are made by their first upsert."""
        if self.per_course:
            return
        with self._serialised():
            self._ready(self.collection)
            if not self.is_local:  # local mode ignores payload indexes, and warns about them
                self._index_payload("course_id", models.PayloadSchemaType.INTEGER)
                self._index_payload("version", models.PayloadSchemaType.KEYWORD)

    def _ready(self, name: str) -> None:
        """Make the collection unless it exists; refuse one of another dense size."""
        size = self.embedder.dimension
        self._create_collection(name, size)
        self._check_size(name, size)

    def _exists(self, course_id: int) -> bool:
        return not self.per_course or self.client.collection_exists(self.name(course_id))

    def _create_collection(self, name: str, size: int) -> None:
        if self.client.collection_exists(name):
            return
        try:
            self.client.create_collection(
                name,
                vectors_config={
                    DENSE: models.VectorParams(size=size, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    KEYWORDS: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
        except Exception:
            # Another process may have created it meanwhile: fine if it now exists.
            if not self.client.collection_exists(name):
                raise

    @property
    def is_local(self) -> bool:
        """True for local-mode Qdrant (a path or ``:memory:``), False for a server."""
        options = self.client.init_options
        return options.get("path") is not None or options.get("location") == ":memory:"

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        with self._lock if self.is_local else nullcontext():
            yield

    def _check_size(self, name: str, size: int) -> None:
        vectors = self.client.get_collection(name).config.params.vectors
        found = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if found is None or found.size != size:
            raise CollectionMismatch(
                f"collection {name!r} holds dense vectors of size "
                f"{found.size if found else None}, the embedder {self.embedder.name!r} makes "
                f"{size}: drop the collection and re-index the courses"
            )

    def _index_payload(self, field: str, schema: models.PayloadSchemaType) -> None:
        self.client.create_payload_index(self.collection, field, field_schema=schema, wait=True)

    def upsert(
        self,
        course_id: int,
        version: str,
        chunks: Sequence[ChunkLike],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        """Store chunks with their dense vectors (same order); same ids overwrite."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return
        points = [
            self._point(course_id, version, chunk, vector)
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        with self._serialised():
            if self.per_course:
                self._ready(self.name(course_id))
            self.client.upsert(self.name(course_id), points=points, wait=True)

    def _point(
        self, course_id: int, version: str, chunk: ChunkLike, vector: Sequence[float]
    ) -> models.PointStruct:
        payload = {
            "course_id": course_id,
            "lesson_id": chunk.lesson_id,
            "index": chunk.index,
            "position": chunk.position,
            "locator": chunk.locator,
            "text": chunk.text,
            "version": version,
        }
        return models.PointStruct(
            id=point_id(course_id, chunk.lesson_id, chunk.index),
            vector={DENSE: list(vector), KEYWORDS: self.encoder.encode_document(chunk.text)},
            payload=payload,
        )

    def drop_other_versions(self, course_id: int, keep_version: str) -> None:
        """Delete the course's chunks of every version but ``keep_version``."""
        scope = self.scope(course_id)
        selector = models.Filter(
            must=scope.must if scope is not None else None,
            must_not=[_match("version", keep_version)],
        )
        with self._serialised():
            if self._exists(course_id):
                self.client.delete(self.name(course_id), points_selector=selector, wait=True)

    def drop_course(self, course_id: int) -> None:
        with self._serialised():
            if self.per_course:
                self.client.delete_collection(self.name(course_id))
            else:
                selector = course_filter(course_id)
                self.client.delete(self.collection, points_selector=selector, wait=True)

    def count(self, course_id: int) -> int:
        with self._serialised():
            if not self._exists(course_id):
                return 0
            found = self.client.count(self.name(course_id), count_filter=self.scope(course_id))
        return found.count

    def search(self, course_id: int, query: str, limit: int = 5) -> list[Hit]:
        """Dense and keyword top-k of the course, fused by reciprocal rank fusion; each hit
        with its cosine similarity to the query."""
        if not query.strip():
            return []
        only_course = self.scope(course_id)
        dense = self._dense_query(query)
        prefetch = [
            models.Prefetch(
                query=dense,
                using=DENSE,
                filter=only_course,
                limit=self.prefetch_limit,
            )
        ]
        keywords = self.encoder.encode_query(query)
        if keywords.indices:
            prefetch.append(
                models.Prefetch(
                    query=keywords, using=KEYWORDS, filter=only_course, limit=self.prefetch_limit
                )
            )
        return self._hits(
            course_id,
            prefetch=prefetch,
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            query_filter=only_course,
            limit=limit,
            similar_to=dense,
        )

    def dense_search(self, course_id: int, query: str, limit: int = 5) -> list[Hit]:
        """The course's chunks by cosine similarity alone (diagnostics)."""
        return self._hits(
            course_id,
            query=self._dense_query(query),
            using=DENSE,
            query_filter=self.scope(course_id),
            limit=limit,
        )

    def keyword_search(self, course_id: int, query: str, limit: int = 5) -> list[Hit]:
        """The course's chunks by BM25 alone (diagnostics)."""
        keywords = self.encoder.encode_query(query)
        if not keywords.indices:
            return []
        return self._hits(
            course_id,
            query=keywords,
            using=KEYWORDS,
            query_filter=self.scope(course_id),
            limit=limit,
        )

    def _dense_query(self, query: str) -> list[float]:
        return self.embedder.embed([query])[0]

    def _hits(
        self, course_id: int, *, similar_to: Sequence[float] | None = None, **request: Any
    ) -> list[Hit]:
        """The points of a query; with ``similar_to``, each with its dense vector's cosine to it."""
        vectors = [DENSE] if similar_to is not None else False
        with self._serialised():
            if not self._exists(course_id):
                return []
            found = self.client.query_points(
                self.name(course_id), with_payload=True, with_vectors=vectors, **request
            )
        return [_hit(point, similar_to) for point in found.points]


def _hit(point: models.ScoredPoint, similar_to: Sequence[float] | None = None) -> Hit:
    payload = point.payload or {}
    found = point.vector.get(DENSE) if isinstance(point.vector, dict) else None
    vector = found if isinstance(found, list) and found and isinstance(found[0], float) else None
    return Hit(
        lesson_id=payload["lesson_id"],
        position=payload["position"],
        locator=payload.get("locator"),
        text=payload["text"],
        score=point.score,
        similarity=cosine(vector, similar_to) if vector and similar_to else None,
    )


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine similarity of two vectors; None for a zero vector. Qdrant keeps the dense
    vectors normalised (cosine distance) and embedders return unit vectors, but the norms
    cost little next to the dot product."""
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if not norms:
        return None
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norms
