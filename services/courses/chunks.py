"""The pipeline's working set in MongoDB: each chunk of a job's version, its vector, its marks.

One document per (version, course, lesson, chunk index): storing a chunk twice overwrites it.
``seq`` orders a version's chunks (lesson by lesson), so batches are taken in a stable order;
a chunk gets its ``vector`` once embedded and ``indexed`` once the content service has it,
which is what lets a resumed job skip the work already done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database

COLLECTION = "course_chunks"


@dataclass(frozen=True)
class StoredChunk:
    """A chunk of a lesson: ``index`` within the lesson, ``seq`` within the version."""

    lesson_id: int
    index: int
    seq: int
    start: int
    locator: str | None
    text: str
    vector: list[float] | None = None


class ChunkStore(Protocol):
    """Where the pipeline keeps chunks between its steps (MongoDB, or a fake in tests)."""

    def save(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        """Store the chunks; a chunk stored before keeps its vector and marks."""
        ...

    def count(self, version: str, *, embedded: bool = False, indexed: bool = False) -> int:
        """The version's chunks (only the embedded, or only the indexed ones)."""
        ...

    def unembedded(self, version: str, limit: int) -> list[StoredChunk]:
        """The first ``limit`` chunks without a vector, in ``seq`` order."""
        ...

    def set_vectors(
        self, version: str, chunks: Sequence[StoredChunk], vectors: Sequence[Sequence[float]]
    ) -> None: ...

    def unindexed(self, version: str, limit: int) -> list[StoredChunk]:
        """The first ``limit`` embedded chunks not yet indexed, in ``seq`` order."""
        ...

    def mark_indexed(self, version: str, chunks: Sequence[StoredChunk]) -> None: ...

    def drop_other_versions(self, course_id: int, keep: str) -> int:
        """Delete the course's chunks of every version but ``keep``; how many."""
        ...


def _chunk(doc: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        lesson_id=doc["lesson_id"],
        index=doc["index"],
        seq=doc["seq"],
        start=doc["start"],
        locator=doc.get("locator"),
        text=doc["text"],
        vector=doc.get("vector"),
    )


class MongoChunks:
    """:class:`ChunkStore` on a MongoDB collection (``course_chunks``)."""

    def __init__(self, db: Database) -> None:
        self.collection = db[COLLECTION]

    def prepare(self) -> None:
        """The indexes (idempotent): the chunk's identity, a version's order, a course's."""
        self.collection.create_index(
            [
                ("version", ASCENDING),
                ("course_id", ASCENDING),
                ("lesson_id", ASCENDING),
                ("index", ASCENDING),
            ],
            unique=True,
            name="chunk_key",
        )
        self.collection.create_index([("version", ASCENDING), ("seq", ASCENDING)], name="by_seq")
        self.collection.create_index(
            [("course_id", ASCENDING), ("version", ASCENDING)], name="by_course"
        )

    def save(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        if not chunks:
            return
        ops = [
            UpdateOne(
                {
                    "version": version,
                    "course_id": course_id,
                    "lesson_id": chunk.lesson_id,
                    "index": chunk.index,
                },
                {
                    "$set": {
                        "seq": chunk.seq,
                        "start": chunk.start,
                        "locator": chunk.locator,
                        "text": chunk.text,
                    },
                    "$setOnInsert": {"indexed": False},
                },
                upsert=True,
            )
            for chunk in chunks
        ]
        self.collection.bulk_write(ops, ordered=False)

    def count(self, version: str, *, embedded: bool = False, indexed: bool = False) -> int:
        query: dict[str, Any] = {"version": version}
        if embedded:
            query["vector"] = {"$exists": True}
        if indexed:
            query["indexed"] = True
        return int(self.collection.count_documents(query))

    def _first(self, query: dict[str, Any], limit: int) -> list[StoredChunk]:
        cursor = self.collection.find(query, {"_id": 0}).sort("seq", ASCENDING).limit(limit)
        return [_chunk(doc) for doc in cursor]

    def unembedded(self, version: str, limit: int) -> list[StoredChunk]:
        return self._first({"version": version, "vector": {"$exists": False}}, limit)

    def set_vectors(
        self, version: str, chunks: Sequence[StoredChunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        ops = [
            UpdateOne(
                {"version": version, "seq": chunk.seq},
                {"$set": {"vector": [float(x) for x in vector]}},
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        if ops:
            self.collection.bulk_write(ops, ordered=False)

    def unindexed(self, version: str, limit: int) -> list[StoredChunk]:
        query = {"version": version, "vector": {"$exists": True}, "indexed": {"$ne": True}}
        return self._first(query, limit)

    def mark_indexed(self, version: str, chunks: Sequence[StoredChunk]) -> None:
        seqs = [chunk.seq for chunk in chunks]
        self.collection.update_many(
            {"version": version, "seq": {"$in": seqs}}, {"$set": {"indexed": True}}
        )

    def drop_other_versions(self, course_id: int, keep: str) -> int:
        result = self.collection.delete_many({"course_id": course_id, "version": {"$ne": keep}})
        return int(result.deleted_count)
