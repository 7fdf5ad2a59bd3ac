"""Shared by the courses tests: viewers, quick set-ups, and fakes of the pipeline's adapters.

Each fake implements the real interface it stands for: ``ContentApi`` (the content service),
``Embedder`` (mesh.embedding), ``ChunkStore`` (the MongoDB working set). No tests here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from contracts.base import Id, Viewer
from contracts.content import ContentApi, IndexBatch, IndexedChunk, Passage, SearchRequest, Version
from contracts.courses import CourseCreate, CourseOut, LessonCreate, LessonOut, StoredFile
from contracts.errors import Unavailable
from mesh.chunking import chunk_sections
from mesh.embedding import EmbeddingUnavailable
from mesh.sql import make_sessionmaker
from services.courses import courses, jobs, pipeline
from services.courses.chunks import StoredChunk
from services.courses.models import Base, PublishJob
from tests.unit.fakes import RecordingSink, RecordingTasks

TEACHER = Viewer(user_id=1)
OTHER_TEACHER = Viewer(user_id=2)
STUDENT = Viewer(user_id=3)
ADMIN = Viewer(user_id=99, is_admin=True)
RUNNER = "message-1"


def sqlite_sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'courses.db'}", Base.metadata)


def new_course(
    sessions: sessionmaker, capacity: int | None = None, teacher: Viewer = TEACHER
) -> CourseOut:
    request = CourseCreate(title="Python", description="From zero", capacity=capacity)
    return courses.create_course(sessions, teacher.user_id, request)


def add_text(
    sessions: sessionmaker,
    course_id: int,
    text: str = "Decorators wrap functions.",
    title: str = "Lesson",
    position: int | None = None,
) -> LessonOut:
    lesson = LessonCreate(title=title, text=text, position=position)
    return courses.add_lesson(sessions, course_id, TEACHER, lesson)


def add_file(
    sessions: sessionmaker, course_id: int, uploads: Path, name: str, data: bytes, kind: str
) -> LessonOut:
    """Store ``data`` as the gateway does (under its SHA-256) and add it as a lesson."""
    digest = hashlib.sha256(data).hexdigest()
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / digest).write_bytes(data)
    stored = StoredFile(sha256=digest, size=len(data), kind=kind, filename=name)
    return courses.add_lesson(sessions, course_id, TEACHER, LessonCreate(title=name, file=stored))


def published_course(
    sessions: sessionmaker, capacity: int | None = None, lessons: int = 2
) -> CourseOut:
    """A course with text lessons, taken through a publishing job's bookkeeping."""
    course = new_course(sessions, capacity)
    for number in range(lessons):
        add_text(sessions, course.id, f"Lesson {number} is about decorators.")
    job = jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    jobs.succeed(sessions, RecordingSink(), claim, chunks=lessons)
    return courses.get_course(sessions, course.id, TEACHER)


def job_row(sessions: sessionmaker, job_id: str) -> PublishJob:
    with sessions() as session:
        job = session.scalar(select(PublishJob).where(PublishJob.id == job_id))
        assert job is not None
        return job


# ---------------------------------------------------------------- fakes of the adapters


class FakeEmbedder:
    """A deterministic ``Embedder``: unit vectors from the text's hash; fails when told."""

    name = "fake-embedder"
    dimension = 8

    def __init__(self, fail_after: int | None = None, error: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_after = fail_after
        self.error = error or EmbeddingUnavailable("the embeddings server is down")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise self.error
        self.batches.append(list(texts))
        return [self._vector(text) for text in texts]

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        raw = [b - 127.5 for b in digest[: self.dimension]]
        norm = math.sqrt(sum(x * x for x in raw))
        return [x / norm for x in raw]


class FakeContent(ContentApi):
    """The content service's index in memory: one point per (course, lesson, chunk index),
    as the real one derives its point ids; every chunk it was sent is recorded."""

    def __init__(
        self,
        fail_from: int | None = None,
        fail_calls: Collection[int] = (),
        error: Exception | None = None,
    ) -> None:
        self.points: dict[tuple[int, int, int], tuple[str, IndexedChunk]] = {}
        self.sent: list[tuple[int, int, int]] = []
        self.calls = 0
        self.fail_from = fail_from  # every index call from this one (1-based) fails
        self.fail_calls = set(fail_calls)  # these index calls fail
        self.error = error or Unavailable("the content service is down")
        self.activated: list[tuple[int, str]] = []

    def search(self, request: SearchRequest) -> list[Passage]:
        words = set(request.q.lower().split())
        found = [
            chunk
            for (course_id, _, _), (_, chunk) in sorted(self.points.items())
            if course_id == request.course_id and words & set(chunk.text.lower().split())
        ]
        return [
            Passage(
                lesson_id=c.lesson_id, position=c.index, locator=c.locator, text=c.text, score=1
            )
            for c in found[: request.limit]
        ]

    def index(self, batch: IndexBatch) -> int:
        self.calls += 1
        if self.calls in self.fail_calls or (self.fail_from and self.calls >= self.fail_from):
            raise self.error
        for chunk in batch.chunks:
            key = (batch.course_id, chunk.lesson_id, chunk.index)
            self.points[key] = (batch.version, chunk)
            self.sent.append(key)
        return len(batch.chunks)

    def activate(self, course_id: Id, version: Version) -> int:
        self.activated.append((course_id, version))
        self.points = {
            key: value
            for key, value in self.points.items()
            if key[0] != course_id or value[0] == version
        }
        return self.count(course_id)

    def count(self, course_id: Id) -> int:
        return sum(1 for key in self.points if key[0] == course_id)

    @contextmanager
    def opened(self) -> Iterator[ContentApi]:
        """What ``standalone_client`` gives: the client for one attempt."""
        yield self


class MemoryChunks:
    """A ``ChunkStore`` in memory, keyed as the MongoDB one: (version, course, lesson, index)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, int, int, int], StoredChunk] = {}
        self.marks: list[tuple[str, int, list[int]]] = []

    def save(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        for chunk in chunks:
            self.docs.setdefault((version, course_id, chunk.lesson_id, chunk.index), chunk)

    def chunks(self, version: str) -> list[StoredChunk]:
        found = [chunk for key, chunk in self.docs.items() if key[0] == version]
        return sorted(found, key=lambda chunk: chunk.seq)

    def mark_indexed(self, version: str, course_id: int, chunks: Sequence[StoredChunk]) -> None:
        self.marks.append((version, course_id, [chunk.seq for chunk in chunks]))

    def indexed(self, version: str) -> set[int]:
        return {seq for mark in self.marks if mark[0] == version for seq in mark[2]}

    def drop_other_versions(self, course_id: int, keep: str) -> int:
        self.marks = [m for m in self.marks if m[1] != course_id or m[0] == keep]
        gone = [key for key in self.docs if key[1] == course_id and key[0] != keep]
        for key in gone:
            del self.docs[key]
        return len(gone)

    def versions(self, course_id: int) -> set[str]:
        return {key[0] for key in self.docs if key[1] == course_id}


def make_adapters(
    sessions: sessionmaker,
    uploads: Path,
    *,
    embedder: FakeEmbedder | None = None,
    content: FakeContent | None = None,
    store: MemoryChunks | None = None,
    events: RecordingSink | None = None,
    batch_size: int = 2,
) -> pipeline.Adapters:
    content = content or FakeContent()
    return pipeline.Adapters(
        sessions=sessions,
        events=events or RecordingSink(),
        store=store or MemoryChunks(),
        embedder=embedder or FakeEmbedder(),
        content=content.opened,
        chunker=chunk_sections,
        uploads=uploads,
        batch_size=batch_size,
    )
