"""The content service's index provider: loads the embedder and opens Qdrant in ``setup()``.

Qdrant local mode lets one process open its folder, so this process owns the index: the
pipeline's actors send it their embedded chunks over RPC. Calls run on a real thread
(``eventlet.tpool``) so that encoding a query never stalls the hub; local mode is not
thread-safe, so they are serialised there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
from eventlet import tpool
from nameko.extensions import DependencyProvider

from mesh.embedding import make_embedder
from mesh.settings import get_settings
from mesh.vectors import make_qdrant
from services.content.index import Chunk, ContentIndex, Hit

Offload = Callable[..., Any]


class OffloadedIndex:
    """What a worker sees: the index's calls, each run through ``offload`` (a real thread)."""

    def __init__(self, index: ContentIndex, offload: Offload = tpool.execute) -> None:
        self._index = index
        self._offload = offload
        # Local mode takes one call at a time: queue greenlets here rather than park
        # several real threads on the index's lock.
        self._turn = eventlet.semaphore.Semaphore(1) if index.is_local else None

    def _run(self, fn: Any, *args: Any) -> Any:
        if self._turn is None:
            return self._offload(fn, *args)
        with self._turn:
            return self._offload(fn, *args)

    def search(self, course_id: int, query: str, limit: int) -> list[Hit]:
        return list(self._run(self._index.search, course_id, query, limit))

    def upsert(
        self, course_id: int, version: str, chunks: list[Chunk], vectors: list[list[float]]
    ) -> None:
        self._run(self._index.upsert, course_id, version, chunks, vectors)

    def drop_other_versions(self, course_id: int, keep_version: str) -> None:
        self._run(self._index.drop_other_versions, course_id, keep_version)

    def count(self, course_id: int) -> int:
        return int(self._run(self._index.count, course_id))


class SearchIndex(DependencyProvider):
    """Injects the :class:`OffloadedIndex` of the course-content collection."""

    def setup(self) -> None:
        settings = get_settings()
        if settings.embeddings_threads is None:
            # One short query at a time: a second torch thread only stalls when the
            # workers' embedding wants the other core (p99 x5 measured).
            settings = settings.model_copy(update={"embeddings_threads": 1})
        embedder = make_embedder(settings)
        load = getattr(embedder, "load", None)
        if load is not None:
            load()  # seconds: at start, never on the first search
        self.client = make_qdrant(settings)
        index = ContentIndex(self.client, embedder, collection=settings.qdrant_collection)
        index.ensure_collection()
        self.index = OffloadedIndex(index)

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> OffloadedIndex:
        return self.index
