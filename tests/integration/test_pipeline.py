"""The publishing pipeline for real: the bundled MiniLM embedder, real documents (a PDF made by
fpdf2, SRT, HTML, Markdown, JSON text), chunks in the embedded MongoDB server, the courses
database migrated by alembic. The content service is a fake that implements ``ContentApi`` and
keeps one point per id (course, lesson, chunk index), as the real index does.

A crash in the middle (an exception after a few batches, or a worker process SIGKILLed) and a
rerun by the same message leave exactly one point per chunk.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from fpdf import FPDF
from pymongo import MongoClient
from pymongo.database import Database
from sqlalchemy.orm import sessionmaker

from contracts.base import Id
from contracts.content import ContentApi, IndexBatch, Passage, SearchRequest, Version
from contracts.courses import JobOut
from contracts.errors import Unavailable
from mesh.chunking import chunk_sections
from mesh.embedding import Embedder, EmbeddingUnavailable, LocalEmbedder, make_embedder
from mesh.migrations import upgrade
from mesh.settings import Settings
from mesh.sql import make_sessionmaker
from services.courses import courses, jobs, pipeline
from services.courses.chunks import COLLECTION, MongoChunks
from tests.unit.courses_fakes import (
    RUNNER,
    TEACHER,
    FakeContent,
    add_file,
    add_text,
    new_course,
)
from tests.unit.fakes import RecordingSink, RecordingTasks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BATCH = 4
MAX_RETRIES = 5
PAGES = [
    " ".join([f"Page {n}: a decorator wraps a function to add behaviour before it runs."] * 25)
    for n in (1, 2, 3)
]
SRT = "".join(
    f"{n}\n00:00:{2 * n:02d},000 --> 00:00:{2 * n + 1:02d},500\n"
    f"Cue {n}: generators produce values lazily, one at a time.\n\n"
    for n in range(1, 40)
).encode()
HTML = (
    "<!doctype html><html><body><h1>Iterators</h1><p>"
    + " ".join(["An iterator returns the next item each time it is asked."] * 20)
    + "</p><h2>Exhaustion</h2><p>"
    + " ".join(["A spent iterator raises StopIteration."] * 20)
    + "</p><script>ignored()</script></body></html>"
).encode()
MARKDOWN = (
    "# Context managers\n\n"
    + " ".join(["The with statement pairs setup with teardown."] * 20)
    + "\n\n# Exceptions\n\n"
    + " ".join(["An exception leaving the block still runs the teardown."] * 20)
).encode()
TEXT = " ".join(["Closures capture the variables of the enclosing scope."] * 30)


def make_pdf(pages: Sequence[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    """The local model, as ``make_embedder`` picks it with no remote configured (loaded once)."""
    local = make_embedder(Settings(embeddings_base_url=None, openai_api_key=None))
    assert isinstance(local, LocalEmbedder)
    local.load()
    return local


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'courses.db'}"
    upgrade("courses", url)
    return url


@pytest.fixture
def sessions(db_url: str) -> sessionmaker:
    return make_sessionmaker(db_url)


@pytest.fixture
def mongo(mongo_uri: str) -> Iterator[Database]:
    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    name = f"it_{uuid.uuid4().hex[:8]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def store(mongo: Database) -> MongoChunks:
    chunks = MongoChunks(mongo)
    chunks.prepare()
    return chunks


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def course_id(sessions: sessionmaker, uploads: Path) -> int:
    course = new_course(sessions)
    add_file(sessions, course.id, uploads, "slides.pdf", make_pdf(PAGES), "pdf")
    add_file(sessions, course.id, uploads, "talk.srt", SRT, "srt")
    add_file(sessions, course.id, uploads, "page.html", HTML, "html")
    add_file(sessions, course.id, uploads, "notes.md", MARKDOWN, "markdown")
    add_text(sessions, course.id, TEXT, title="Closures")
    return course.id


class Watching:
    """An ``Embedder`` that notes the job's step and percent before each batch it embeds."""

    def __init__(self, inner: Embedder, sessions: sessionmaker, fail_after: int | None = None):
        self.inner, self.sessions, self.fail_after = inner, sessions, fail_after
        self.job_id = ""
        self.seen: list[tuple[str, int]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise EmbeddingUnavailable("the embedder went away")
        job = jobs.get_job(self.sessions, self.job_id, TEACHER)
        self.seen.append((job.step, job.percent))
        return self.inner.embed(texts)


def adapters(
    sessions: sessionmaker, store: MongoChunks, embedder: Embedder, content, uploads: Path
) -> pipeline.Adapters:
    return pipeline.Adapters(
        sessions=sessions,
        events=RecordingSink(),
        store=store,
        embedder=embedder,
        content=content.opened,
        chunker=chunk_sections,
        uploads=uploads,
        batch_size=BATCH,
    )


def publish(sessions: sessionmaker, course_id: int) -> JobOut:
    return jobs.publish(sessions, RecordingTasks(), course_id, TEACHER)


def job_of(sessions: sessionmaker, job_id: str) -> JobOut:
    return jobs.get_job(sessions, job_id, TEACHER)


def chunk_docs(mongo: Database, version: str) -> list[dict]:
    return list(mongo[COLLECTION].find({"version": version}, {"_id": 0}))


# ---------------------------------------------------------------- a whole run


def test_a_course_is_extracted_chunked_embedded_and_indexed(
    sessions, store, mongo, embedder, uploads, course_id
) -> None:
    watching, content = Watching(embedder, sessions), FakeContent()
    job = publish(sessions, course_id)
    assert (job.status, job.percent) == ("queued", 0)
    watching.job_id = job.id
    assert pipeline.attempt(
        adapters(sessions, store, watching, content, uploads), job.id, RUNNER, 0, MAX_RETRIES
    )

    done = job_of(sessions, job.id)
    assert (done.status, done.step_index, done.percent, done.error) == ("succeeded", 6, 100, None)
    assert courses.get_course(sessions, course_id, TEACHER).status == "published"
    docs = chunk_docs(mongo, job.id)
    assert len(docs) == len(store.indexed(job.id)) == content.count(course_id) > 20
    assert len(content.sent) == len(docs)  # each chunk sent once
    vectors = [chunk.vector for _, chunk in content.points.values()]
    assert all(len(vector) == 384 for vector in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    # The percent moved batch by batch through the embed step's range.
    percents = [percent for _, percent in watching.seen]
    assert {step for step, _ in watching.seen} == {"embed"}
    assert len(watching.seen) == math.ceil(len(docs) / BATCH)
    assert percents == sorted(percents) and len(set(percents)) > len(percents) // 2
    assert jobs.STEP_RANGES["embed"][0] <= percents[0] < percents[-1] < jobs.STEP_RANGES["embed"][1]

    locators = {chunk.locator for _, chunk in content.points.values()}
    assert {"page 1", "page 2", "page 3", "Iterators", "Context managers"} <= locators
    assert any(locator and locator.startswith("00:00:") for locator in locators)
    lessons = courses.list_lessons(sessions, course_id, TEACHER)
    for lesson in lessons:  # chunk indexes run 0..n-1 within each lesson
        indexes = sorted(i for (_, lid, i) in content.points if lid == lesson.id)
        assert indexes == list(range(len(indexes))) and indexes, lesson.title


def test_similar_text_lands_near(sessions, store, embedder, uploads, course_id) -> None:
    content = FakeContent()
    job = publish(sessions, course_id)
    pipeline.attempt(
        adapters(sessions, store, embedder, content, uploads), job.id, RUNNER, 0, MAX_RETRIES
    )
    [query] = embedder.embed(["how do I wrap a function to add behaviour"])
    scored = sorted(
        (
            (math.fsum(a * b for a, b in zip(query, c.vector, strict=True)), c.locator or "")
            for _, c in content.points.values()
        ),
        reverse=True,
    )
    assert scored[0][1].startswith("page ")  # the decorator slides


# ---------------------------------------------------------------- crash and resume


def test_a_crash_while_indexing_then_a_rerun_leaves_one_point_per_chunk(
    sessions, store, mongo, embedder, uploads, course_id
) -> None:
    broken = FakeContent(fail_from=3)  # two batches indexed, then the service is gone
    job = publish(sessions, course_id)
    run = adapters(sessions, store, embedder, broken, uploads)
    with pytest.raises(Unavailable):
        pipeline.attempt(run, job.id, RUNNER, 0, MAX_RETRIES)
    assert job_of(sessions, job.id).status == "running"
    assert len(store.indexed(job.id)) == 2 * BATCH

    healthy = FakeContent()
    healthy.points, healthy.sent = dict(broken.points), list(broken.sent)  # the same index
    watching = Watching(embedder, sessions)
    watching.job_id = job.id
    rerun = adapters(sessions, store, watching, healthy, uploads)
    assert pipeline.attempt(rerun, job.id, RUNNER, 1, MAX_RETRIES)
    total = len(chunk_docs(mongo, job.id))
    assert healthy.count(course_id) == total == len(healthy.sent) == len(set(healthy.sent))
    # Only the chunks the index lacked were embedded again, a batch at a time.
    assert len(watching.seen) == math.ceil((total - 2 * BATCH) / BATCH)
    assert job_of(sessions, job.id).status == "succeeded"


def test_a_crash_while_embedding_resumes_where_it_stopped(
    sessions, store, mongo, embedder, uploads, course_id
) -> None:
    content = FakeContent()
    job = publish(sessions, course_id)
    first = Watching(embedder, sessions, fail_after=3)
    first.job_id = job.id
    with pytest.raises(EmbeddingUnavailable):
        pipeline.attempt(adapters(sessions, store, first, content, uploads), job.id, RUNNER, 0, 5)
    stopped_at = job_of(sessions, job.id).percent
    second = Watching(embedder, sessions)
    second.job_id = job.id
    assert pipeline.attempt(
        adapters(sessions, store, second, content, uploads), job.id, RUNNER, 1, 5
    )
    total = len(chunk_docs(mongo, job.id))
    assert len(first.seen) + len(second.seen) == math.ceil(total / BATCH)
    assert second.seen[0][1] >= stopped_at  # the percent did not go back
    assert content.count(course_id) == total == len(content.sent)


def test_republishing_replaces_the_chunks_and_the_points(
    sessions, store, mongo, embedder, uploads, course_id
) -> None:
    content = FakeContent()
    first = publish(sessions, course_id)
    pipeline.attempt(adapters(sessions, store, embedder, content, uploads), first.id, RUNNER, 0, 5)
    before = content.count(course_id)
    add_text(sessions, course_id, "Type hints document what a function expects.", title="Hints")
    second = publish(sessions, course_id)
    pipeline.attempt(
        adapters(sessions, store, embedder, content, uploads), second.id, "message-2", 0, 5
    )
    assert chunk_docs(mongo, first.id) == []
    assert len(chunk_docs(mongo, second.id)) == before + 1 == content.count(course_id)
    assert {version for version, _ in content.points.values()} == {second.id}


# ---------------------------------------------------------------- a worker SIGKILLed


class MongoContent(ContentApi):
    """A content service whose points outlive a process: one document per point id, and a log
    of every chunk it was sent. Slow enough to be killed in the middle."""

    def __init__(self, db: Database, delay: float = 0.0) -> None:
        self.points, self.log, self.delay = db["fake_points"], db["fake_sent"], delay

    def search(self, request: SearchRequest) -> list[Passage]:
        return []

    def index(self, batch: IndexBatch) -> int:
        time.sleep(self.delay)
        for chunk in batch.chunks:
            point = f"{batch.course_id}/{chunk.lesson_id}/{chunk.index}"
            doc = {"course_id": batch.course_id, "version": batch.version, "text": chunk.text}
            self.points.replace_one({"_id": point}, doc, upsert=True)
            self.log.insert_one({"point": point})
        return len(batch.chunks)

    def activate(self, course_id: Id, version: Version) -> int:
        self.points.delete_many({"course_id": course_id, "version": {"$ne": version}})
        return self.count(course_id)

    def count(self, course_id: Id) -> int:
        return int(self.points.count_documents({"course_id": course_id}))

    @contextmanager
    def opened(self) -> Iterator[ContentApi]:
        yield self


def worker_main(db_url: str, mongo_uri: str, mongo_db: str, uploads: str, job_id: str) -> None:
    """A worker process's run of the job (``python -c``), slowed down to be killed."""
    db: Database = MongoClient(mongo_uri)[mongo_db]
    store = MongoChunks(db)
    content = MongoContent(db, delay=0.3)
    run = adapters(make_sessionmaker(db_url), store, LocalEmbedder(), content, Path(uploads))
    pipeline.attempt(run, job_id, RUNNER, 0, MAX_RETRIES)


def test_a_worker_killed_in_the_middle_resumes_without_duplicates(
    sessions, db_url, store, mongo, mongo_uri, embedder, uploads, course_id
) -> None:
    job = publish(sessions, course_id)
    call = (
        "from tests.integration.test_pipeline import worker_main; "
        f"worker_main({db_url!r}, {mongo_uri!r}, {mongo.name!r}, {str(uploads)!r}, {job.id!r})"
    )
    worker = subprocess.Popen([sys.executable, "-c", call], cwd=ROOT, env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while mongo["fake_sent"].count_documents({}) < 3 * BATCH:
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker never reached the index step"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(10)
    assert job_of(sessions, job.id).status == "running"

    # RabbitMQ redelivers the unacked message: the same runner resumes the job.
    content = MongoContent(mongo)
    run = adapters(sessions, store, embedder, content, uploads)
    assert pipeline.attempt(run, job.id, RUNNER, 0, MAX_RETRIES)
    total = len(chunk_docs(mongo, job.id))
    sent = [doc["point"] for doc in mongo["fake_sent"].find()]
    assert content.count(course_id) == total  # one point per chunk
    assert len(set(sent)) == total
    assert len(sent) - total <= BATCH  # at most the batch in flight was sent again
    assert job_of(sessions, job.id).status == "succeeded"
