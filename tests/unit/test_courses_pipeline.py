"""The publishing pipeline over fakes: steps, progress, failures, resuming, re-publishing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
from nameko.exceptions import RemoteError, RpcTimeout
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from contracts.courses import CoursePublished, JobOut
from contracts.errors import InvalidInput, Unavailable
from mesh.chunking import chunk_sections
from mesh.documents import CorruptDocument, Section
from mesh.embedding import EmbeddingRejected, EmbeddingUnavailable
from services.courses import courses, jobs, pipeline
from tests.unit.courses_fakes import (
    RUNNER,
    STUDENT,
    TEACHER,
    FakeContent,
    FakeEmbedder,
    MemoryChunks,
    add_file,
    add_text,
    make_adapters,
    new_course,
    sqlite_sessions,
)
from tests.unit.fakes import RecordingSink, RecordingTasks

MAX_RETRIES = 5
DECORATORS = " ".join(["A decorator takes a function and returns another one."] * 18)
CLOSURES = " ".join(["A closure keeps the variables of the scope it was defined in."] * 18)
MARKDOWN = f"# Decorators\n\n{DECORATORS}\n\n# Closures\n\n{CLOSURES}\n".encode()
LONG = " ".join(f"Sentence number {n} talks about generators and iterators." for n in range(60))


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return sqlite_sessions(tmp_path)


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def course(sessions, uploads):
    course = new_course(sessions)
    add_text(sessions, course.id, LONG, title="Generators")
    add_file(sessions, course.id, uploads, "notes.md", MARKDOWN, "markdown")
    return course


def start(sessions: sessionmaker, course_id: int) -> JobOut:
    return jobs.publish(sessions, RecordingTasks(), course_id, TEACHER)


def job_of(sessions: sessionmaker, job_id: str) -> JobOut:
    return jobs.get_job(sessions, job_id, TEACHER)


def expected_chunks(sessions: sessionmaker, course_id: int, uploads: Path) -> int:
    adapters = make_adapters(sessions, uploads)
    with sessions() as session:
        lessons = courses.lessons_of(session, course_id)
    return sum(len(chunk_sections(pipeline.lesson_sections(adapters, one))) for one in lessons)


class WatchingEmbedder(FakeEmbedder):
    """Notes the job's step and percent before each batch."""

    def __init__(self, sessions: sessionmaker, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sessions = sessions
        self.job_id = ""
        self.seen: list[tuple[str, int]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        job = job_of(self.sessions, self.job_id)
        self.seen.append((job.step, job.percent))
        return super().embed(texts)


# ---------------------------------------------------------------- success


def test_a_job_runs_every_step_and_publishes(sessions, uploads, course) -> None:
    embedder, content, sink = WatchingEmbedder(sessions), FakeContent(), RecordingSink()
    adapters = make_adapters(sessions, uploads, embedder=embedder, content=content, events=sink)
    job = start(sessions, course.id)
    embedder.job_id = job.id
    assert pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES) is True

    done = job_of(sessions, job.id)
    assert (done.status, done.step, done.step_index, done.percent) == (
        "succeeded",
        "publish",
        6,
        100,
    )
    assert done.error is None
    total = expected_chunks(sessions, course.id, uploads)
    assert total > 4  # several batches of 2
    assert content.count(course.id) == total == len(content.sent)
    assert content.activated == [(course.id, job.id)]
    assert {version for version, _ in content.points.values()} == {job.id}
    published = courses.get_course(sessions, course.id, STUDENT)
    assert published.status == "published"
    [event] = sink.events
    assert isinstance(event, CoursePublished) and event.chunks == total
    # The percent moves during embedding, within the embed step's range, never back.
    percents = [percent for step, percent in embedder.seen]
    assert {step for step, _ in embedder.seen} == {"embed"}
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert jobs.STEP_RANGES["embed"][0] <= percents[0] < percents[-1] < jobs.STEP_RANGES["embed"][1]


def test_chunks_keep_their_lesson_index_and_locator(sessions, uploads, course) -> None:
    content = FakeContent()
    adapters = make_adapters(sessions, uploads, content=content)
    job = start(sessions, course.id)
    pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES)
    lessons = courses.list_lessons(sessions, course.id, TEACHER)
    by_lesson = {
        lesson.id: sorted(i for (_, lid, i) in content.points if lid == lesson.id)
        for lesson in lessons
    }
    assert all(indexes == list(range(len(indexes))) for indexes in by_lesson.values())
    markdown = [chunk for _, chunk in content.points.values() if chunk.lesson_id == lessons[1].id]
    assert {chunk.locator for chunk in markdown} == {"Decorators", "Closures"}
    assert all(len(chunk.vector) == FakeEmbedder.dimension for _, chunk in content.points.values())


def test_a_duplicate_message_does_nothing(sessions, uploads, course) -> None:
    content = FakeContent()
    adapters = make_adapters(sessions, uploads, content=content)
    job = start(sessions, course.id)
    assert jobs.claim(sessions, job.id, RUNNER) is not None  # the first message runs it
    assert pipeline.attempt(adapters, job.id, "message-2", 0, MAX_RETRIES) is False
    assert content.calls == 0
    assert job_of(sessions, job.id).status == "running"


# ---------------------------------------------------------------- failures


def test_a_missing_file_fails_the_job_at_once(sessions, uploads, course) -> None:
    for path in uploads.iterdir():
        path.unlink()
    embedder = FakeEmbedder()
    adapters = make_adapters(sessions, uploads, embedder=embedder)
    job = start(sessions, course.id)
    with pytest.raises(pipeline.LessonUnreadable):
        pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES)
    failed = job_of(sessions, job.id)
    assert failed.status == "failed"
    assert "'notes.md'" in (failed.error or "") and "missing" in (failed.error or "")
    assert courses.get_course(sessions, course.id, TEACHER).status == "failed"
    assert embedder.batches == []


def test_a_corrupt_document_fails_the_job_with_its_reason(sessions, uploads) -> None:
    course = new_course(sessions)
    add_file(sessions, course.id, uploads, "talk.srt", b"1\nnot a timestamp\nHello\n", "srt")
    adapters = make_adapters(sessions, uploads)
    job = start(sessions, course.id)
    with pytest.raises(pipeline.LessonUnreadable) as caught:
        pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES)
    assert isinstance(caught.value.__cause__, CorruptDocument)
    error = job_of(sessions, job.id).error or ""
    assert error.startswith("lesson 'talk.srt'") and "SRT" in error


def test_a_transient_failure_is_left_to_retry_then_resumes(sessions, uploads, course) -> None:
    calls: list[int] = []

    def counting_chunker(sections: Sequence[Section]) -> list:
        calls.append(1)
        return chunk_sections(sections)

    store, embedder = MemoryChunks(), FakeEmbedder()
    broken = FakeContent(fail_from=3)
    adapters = make_adapters(sessions, uploads, content=broken, store=store, embedder=embedder)
    adapters = dataclasses.replace(adapters, chunker=counting_chunker)
    job = start(sessions, course.id)
    with pytest.raises(Unavailable):
        pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES)
    waiting = job_of(sessions, job.id)
    assert (waiting.status, waiting.step) == ("running", "embed")
    assert waiting.error == "attempt 1 failed, retrying: the content service is down"
    assert courses.get_course(sessions, course.id, TEACHER).status == "publishing"
    chunked_once = len(calls)
    indexed_before = len(broken.sent)

    healthy = FakeContent()
    healthy.points, healthy.sent = dict(broken.points), list(broken.sent)  # the same index
    adapters = dataclasses.replace(adapters, content=healthy.opened)
    assert pipeline.attempt(adapters, job.id, RUNNER, 1, MAX_RETRIES) is True
    total = expected_chunks(sessions, course.id, uploads)
    assert len(healthy.sent) == total == healthy.count(course.id)  # nothing sent twice
    # Only the batch in flight when the index went away is embedded again.
    assert indexed_before == 2 * adapters.batch_size
    assert sum(len(batch) for batch in embedder.batches) == total + adapters.batch_size
    assert len(calls) == chunked_once  # extract and chunk skipped
    assert job_of(sessions, job.id).status == "succeeded"


def test_retries_exhausted_fail_the_job(sessions, uploads, course) -> None:
    adapters = make_adapters(sessions, uploads, embedder=FakeEmbedder(fail_after=0))
    job = start(sessions, course.id)
    with pytest.raises(EmbeddingUnavailable):
        pipeline.attempt(adapters, job.id, RUNNER, MAX_RETRIES, MAX_RETRIES)
    failed = job_of(sessions, job.id)
    assert failed.status == "failed"
    assert failed.error == "gave up after 6 attempts: the embeddings server is down"
    assert courses.get_course(sessions, course.id, TEACHER).status == "failed"


def test_a_rejected_embedding_fails_at_once(sessions, uploads, course) -> None:
    embedder = FakeEmbedder(fail_after=1, error=EmbeddingRejected("bad model name"))
    adapters = make_adapters(sessions, uploads, embedder=embedder)
    job = start(sessions, course.id)
    with pytest.raises(EmbeddingRejected):
        pipeline.attempt(adapters, job.id, RUNNER, 0, MAX_RETRIES)
    assert (job_of(sessions, job.id).status, job_of(sessions, job.id).error) == (
        "failed",
        "bad model name",
    )


# ---------------------------------------------------------------- re-publishing


def test_republishing_replaces_chunks_and_points(sessions, uploads, course) -> None:
    store, content = MemoryChunks(), FakeContent()
    adapters = make_adapters(sessions, uploads, store=store, content=content)
    first = start(sessions, course.id)
    pipeline.attempt(adapters, first.id, RUNNER, 0, MAX_RETRIES)
    before = content.count(course.id)
    add_text(sessions, course.id, "Context managers pair setup with teardown.", title="With")
    second = start(sessions, course.id)
    assert pipeline.attempt(adapters, second.id, "message-2", 0, MAX_RETRIES) is True
    assert store.versions(course.id) == {second.id}
    assert {version for version, _ in content.points.values()} == {second.id}
    assert content.count(course.id) == before + 1 == len(store.chunks(second.id))
    assert courses.get_course(sessions, course.id, TEACHER).status == "published"


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (Unavailable("content down"), True),
        (EmbeddingUnavailable("timeout"), True),
        (OperationalError("SELECT 1", {}, Exception("gone")), True),
        (RpcTimeout(), True),
        (RemoteError("ValueError", "boom"), True),
        (pipeline.PublishError("no lessons"), False),
        (CorruptDocument("broken"), False),
        (EmbeddingRejected("bad key"), False),
        (InvalidInput("bad batch"), False),
    ],
)
def test_which_errors_are_retried(error: Exception, transient: bool) -> None:
    assert pipeline.is_transient(error) is transient
    assert pipeline.should_retry(0, error, MAX_RETRIES) is transient
    assert pipeline.should_retry(MAX_RETRIES, error, MAX_RETRIES) is False


def test_errors_are_described_without_internals() -> None:
    assert pipeline.describe(RpcTimeout()) == "the content service did not answer in time"
    assert pipeline.describe(OperationalError("SELECT secret", {}, Exception("x"))) == (
        "the courses database was unavailable"
    )
    assert pipeline.describe(KeyError("row")) == "internal error (KeyError)"
    assert pipeline.describe(RemoteError("QdrantError", "at /var/x")) == (
        "the content service failed (QdrantError)"
    )
