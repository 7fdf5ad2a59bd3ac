"""The publishing pipeline: validate, extract, chunk, embed, index, publish (``PUBLISH_STEPS``).

Plain functions over adapters; ``services.courses.actors`` runs them in a Dramatiq worker.
Every step can run again without harm, and a resumed job skips what is done: the chunks
are kept in MongoDB with a mark for each batch the content service has, point ids are
deterministic (the content service derives them from course, lesson and chunk index), and
the final commit (job succeeded, course published, ``course.published``) happens once.

The embed step hands each batch to the index as soon as it is embedded: a vector never
travels through MongoDB, and a crash loses at most the batch in flight. The index step then
makes the new version the course's only one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nameko.exceptions import RemoteError, RpcTimeout
from pymongo.errors import PyMongoError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from contracts.content import ContentApi, IndexBatch, IndexedChunk
from contracts.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    InvalidInput,
    MeshError,
    NotFound,
    PermanentFailure,
)
from mesh.documents import DocumentError, EmptyDocument, Section, extract, normalise
from mesh.embedding import Embedder, EmbeddingRejected, EmbeddingUnavailable
from mesh.outbox import EventSink
from services.courses import access, jobs
from services.courses.chunks import ChunkStore, StoredChunk
from services.courses.courses import lessons_of
from services.courses.jobs import Claim, PublishError
from services.courses.models import Lesson

log = logging.getLogger(__name__)

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PublishError,
    DocumentError,
    EmbeddingRejected,
    PermanentFailure,
    InvalidInput,
    NotFound,
    Forbidden,
    Conflict,
    AuthenticationFailed,
)
"""Retrying cannot help: the job fails at once. Anything else is retried (a bounded number
of times): the content service or the embedder unavailable, a database down, a timeout."""


class LessonUnreadable(PublishError):
    """A lesson whose content cannot be turned into text (or whose file is gone)."""

    def __init__(self, lesson: Lesson, reason: str) -> None:
        super().__init__(f"lesson {lesson.title!r} (id {lesson.id}): {reason}")


class Piece(Protocol):
    """A chunk as the chunker makes it (``mesh.chunking.Chunk``)."""

    @property
    def index(self) -> int: ...

    @property
    def start(self) -> int: ...

    @property
    def locator(self) -> str | None: ...

    @property
    def text(self) -> str: ...


Chunker = Callable[[Sequence[Section]], Sequence[Piece]]
"""Cuts a lesson's sections into chunks, positions kept (``chunk_sections``). It belongs to
the content service's package, which this one may not import: the workers entry wires it."""


@dataclass(frozen=True)
class Adapters:
    """What the pipeline runs on."""

    sessions: sessionmaker
    events: EventSink
    store: ChunkStore
    embedder: Embedder
    content: Callable[[], AbstractContextManager[ContentApi]]
    chunker: Chunker
    uploads: Path
    batch_size: int = 32


# ---------------------------------------------------------------- failures


def is_transient(exc: BaseException) -> bool:
    """Worth retrying later: anything but a known permanent error."""
    return not isinstance(exc, PERMANENT_ERRORS)


def should_retry(retries: int, exc: BaseException, max_retries: int) -> bool:
    """Dramatiq's ``retry_when``: a transient error, with retries left."""
    return retries < max_retries and is_transient(exc)


def describe(exc: BaseException) -> str:
    """What went wrong, for the job's ``error`` (an instructor reads it: no internals)."""
    if isinstance(exc, (*PERMANENT_ERRORS, MeshError, EmbeddingUnavailable)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, RpcTimeout):
        return "the content service did not answer in time"
    if isinstance(exc, RemoteError):
        return f"the content service failed ({exc.exc_type})"
    if isinstance(exc, OperationalError):
        return "the courses database was unavailable"
    if isinstance(exc, PyMongoError):
        return "the chunk store (MongoDB) was unavailable"
    return f"internal error ({type(exc).__name__})"


def attempt(adapters: Adapters, job_id: str, runner: str, retries: int, max_retries: int) -> bool:
    """One attempt at the job by message ``runner`` (``retries`` made before); True if done.

    A failure is re-raised for Dramatiq to retry or fail the message; when no retry will
    follow (a permanent error, or the last attempt), the job and its course end ``failed``.
    """
    try:
        return run(adapters, job_id, runner)
    except jobs.JobAbandoned as exc:
        log.warning("publishing job abandoned", extra={"job_id": job_id, "reason": str(exc)})
        return False
    except BaseException as exc:
        error = describe(exc)
        if should_retry(retries, exc, max_retries):
            _note(adapters, job_id, runner, f"attempt {retries + 1} failed, retrying: {error}")
        else:
            if is_transient(exc):
                error = f"gave up after {retries + 1} attempts: {error}"
            jobs.fail(adapters.sessions, job_id, error, runner=runner)
        raise


def _note(adapters: Adapters, job_id: str, runner: str, error: str) -> None:
    try:
        jobs.note_error(adapters.sessions, job_id, runner, error)
    except Exception:
        log.exception("could not note a job's error", extra={"job_id": job_id})


# ---------------------------------------------------------------- the steps


def run(adapters: Adapters, job_id: str, runner: str) -> bool:
    """Run or resume the job; False if it is not this runner's to run."""
    claim = jobs.claim(adapters.sessions, job_id, runner)
    if claim is None:
        return False
    lessons = validate(adapters, claim)
    if claim.chunks is None:
        texts = extract_lessons(adapters, claim, lessons)
        claim = chunk(adapters, claim, texts)
    embed(adapters, claim)
    index(adapters, claim)
    publish(adapters, claim)
    return True


def validate(adapters: Adapters, claim: Claim) -> list[Lesson]:
    """The course is being published and has lessons, each file of which is at hand."""
    jobs.enter(adapters.sessions, claim, "validate")
    with adapters.sessions() as session:
        course = access.find(session, claim.course_id)
        if course.status != "publishing":
            raise PublishError(f"the course is {course.status}, not being published")
        lessons = lessons_of(session, course.id)
    if not lessons:
        raise PublishError("the course has no lessons")
    for lesson in lessons:
        if lesson.file_sha256 is not None and not _upload(adapters, lesson).is_file():
            raise LessonUnreadable(lesson, "its file is missing from the upload store")
    jobs.advance(adapters.sessions, claim, "validate", 1, 1)
    return lessons


def _upload(adapters: Adapters, lesson: Lesson) -> Path:
    return adapters.uploads / str(lesson.file_sha256)


def lesson_sections(adapters: Adapters, lesson: Lesson) -> list[Section]:
    """A lesson's text: its JSON text as one section, or its file's extracted sections."""
    try:
        if lesson.file_sha256 is None:
            text = normalise(lesson.text or "")
            if not text:
                raise EmptyDocument("the lesson has no text")
            return [Section(text)]
        path = _upload(adapters, lesson)
        if not path.is_file():
            raise LessonUnreadable(lesson, "its file is missing from the upload store")
        return extract(path, lesson.kind)
    except DocumentError as exc:
        raise LessonUnreadable(lesson, str(exc)) from exc


def extract_lessons(
    adapters: Adapters, claim: Claim, lessons: Sequence[Lesson]
) -> list[tuple[Lesson, list[Section]]]:
    jobs.enter(adapters.sessions, claim, "extract")
    texts = []
    for done, lesson in enumerate(lessons, start=1):
        texts.append((lesson, lesson_sections(adapters, lesson)))
        jobs.advance(adapters.sessions, claim, "extract", done, len(lessons))
    return texts


def chunk(adapters: Adapters, claim: Claim, texts: Sequence[tuple[Lesson, list[Section]]]) -> Claim:
    """Cut each lesson into chunks and store them (positions kept) under the job's version."""
    jobs.enter(adapters.sessions, claim, "chunk")
    seq = 0
    for done, (lesson, sections) in enumerate(texts, start=1):
        stored = []
        for piece in adapters.chunker(sections):
            stored.append(
                StoredChunk(
                    lesson_id=lesson.id,
                    index=piece.index,
                    seq=seq,
                    start=piece.start,
                    locator=piece.locator,
                    text=piece.text,
                )
            )
            seq += 1
        adapters.store.save(claim.job_id, claim.course_id, stored)
        jobs.advance(adapters.sessions, claim, "chunk", done, len(texts))
    if seq == 0:
        raise PublishError("the lessons hold no text to index")
    return jobs.chunked(adapters.sessions, claim, seq)


def _total(claim: Claim) -> int:
    assert claim.chunks is not None, "chunk before embedding"
    return claim.chunks


def _indexed(piece: StoredChunk, vector: Sequence[float]) -> IndexedChunk:
    return IndexedChunk(
        lesson_id=piece.lesson_id,
        index=piece.index,
        locator=piece.locator,
        text=piece.text,
        vector=list(vector),
    )


def embed(adapters: Adapters, claim: Claim) -> None:
    """Embed the chunks the index lacks, a batch at a time, and hand each batch to the
    content service at once; the percent moves per batch."""
    jobs.enter(adapters.sessions, claim, "embed")
    total = _total(claim)
    have = adapters.store.indexed(claim.job_id)
    pending = [piece for piece in adapters.store.chunks(claim.job_id) if piece.seq not in have]
    done = total - len(pending)
    with adapters.content() as content:
        for start in range(0, len(pending), adapters.batch_size):
            batch = pending[start : start + adapters.batch_size]
            vectors = adapters.embedder.embed([piece.text for piece in batch])
            if len(vectors) != len(batch):
                raise RuntimeError(f"the embedder gave {len(vectors)} vectors for {len(batch)}")
            chunks = [_indexed(piece, vector) for piece, vector in zip(batch, vectors, strict=True)]
            content.index(
                IndexBatch(course_id=claim.course_id, version=claim.job_id, chunks=chunks)
            )
            adapters.store.mark_indexed(claim.job_id, claim.course_id, batch)
            done += len(batch)
            jobs.advance(adapters.sessions, claim, "embed", done, total)


def index(adapters: Adapters, claim: Claim) -> None:
    """Make this version the course's only one, in the index and here; check the count."""
    jobs.enter(adapters.sessions, claim, "index")
    total = _total(claim)
    with adapters.content() as content:
        remaining = content.activate(claim.course_id, claim.job_id)
    if remaining != total:
        raise RuntimeError(f"the index holds {remaining} chunks of the course, not {total}")
    dropped = adapters.store.drop_other_versions(claim.course_id, claim.job_id)
    jobs.advance(adapters.sessions, claim, "index", 1, 1)
    log.info("course indexed", extra={"job_id": claim.job_id, "chunks": total, "dropped": dropped})


def publish(adapters: Adapters, claim: Claim) -> None:
    jobs.enter(adapters.sessions, claim, "publish")
    jobs.succeed(adapters.sessions, adapters.events, claim, _total(claim))
