"""The pipeline's working set in MongoDB: a job's chunks, and which of them are indexed.

``course_chunks`` holds one document per (version, course, lesson, chunk index); ``seq``
orders a version's chunks, lesson by lesson, so batches are taken in a stable order.
``course_chunk_marks`` holds one document per batch the content service has indexed, which is
what lets a resumed job skip the work already done. Only inserts and indexed finds are used
on the hot path: they are what the embedded MongoDB server does fast (an upsert or an update
there scans the collection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

COLLECTION = "course_chunks"
MARKS = "course_chunk_marks"
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class StoredChunk:
    """A chunk of a lesson: ``index`` within the lesson, ``seq`` within the version."""

    lesson_id: int
    index: int
    seq: int
    start: int
    locator: str | None
    text: str


class ChunkStore(Protocol):
    """Where the pipeline keeps chunks between its steps (MongoDB, or a fake in tests)."""

    def save(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        """Store the chunks; one stored before stays as it is."""
        ...

    def chunks(self, version: str) -> list[StoredChunk]:
        """Every chunk of the version, in ``seq`` order."""
        ...

    def mark_indexed(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        """Remember that the content service has these chunks."""
        ...

    def indexed(self, version: str) -> set[int]:
        """The ``seq`` of every chunk of the version the content service has."""
        ...

    def drop_other_versions(self, course_id: int, keep: str) -> int:
        """Delete the course's chunks (and marks) of every version but ``keep``; how many."""
        ...


def _chunk(doc: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        lesson_id=doc["lesson_id"],
        index=doc["index"],
        seq=doc["seq"],
        start=doc["start"],
        locator=doc.get("locator"),
        text=doc["text"],
    )


class MongoChunks:
    """:class:`ChunkStore` on two MongoDB collections."""

    def __init__(self, db: Database) -> None:
        self.collection = db[COLLECTION]
        self.marks = db[MARKS]

    def prepare(self) -> None:
        """The indexes (idempotent): the chunk's identity, a version's order, a course's."""
        self.collection.create_index(
            [("version", ASCENDING), ("seq", ASCENDING)], unique=True, name="version_seq"
        )
        self.collection.create_index(
            [("course_id", ASCENDING), ("version", ASCENDING)], name="by_course"
        )
        self.marks.create_index([("version", ASCENDING)], name="by_version")
        self.marks.create_index(
            [("course_id", ASCENDING), ("version", ASCENDING)], name="by_course"
        )

    def save(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        docs = [
            {
                "version": version,
                "course_id": course_id,
                "lesson_id": chunk.lesson_id,
                "index": chunk.index,
                "seq": chunk.seq,
                "start": chunk.start,
                "locator": chunk.locator,
                "text": chunk.text,
            }
            for chunk in chunks
        ]
        if not docs:
            return
        try:
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # a rerun: the chunks stored before stay
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise

    def chunks(self, version: str) -> list[StoredChunk]:
        cursor = self.collection.find({"version": version}, {"_id": 0}).sort("seq", ASCENDING)
        return [_chunk(doc) for doc in cursor]

    def mark_indexed(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        seqs = [chunk.seq for chunk in chunks]
        self.marks.insert_one({"version": version, "course_id": course_id, "seqs": seqs})

    def indexed(self, version: str) -> set[int]:
        return {seq for mark in self.marks.find({"version": version}) for seq in mark["seqs"]}

    def drop_other_versions(self, course_id: int, keep: str) -> int:
        stale = {"course_id": course_id, "version": {"$ne": keep}}
        self.marks.delete_many(stale)
        return int(self.collection.delete_many(stale).deleted_count)
