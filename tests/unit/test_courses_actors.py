"""The publish_course actor on Dramatiq's stub broker: retried, resumed, failed as it should.

The actor is registered as services/workers.py does (same options, CurrentMessage on the
broker), with short back-offs, and its adapters are the fakes of test_courses_support.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import sessionmaker

from contracts.courses import PIPELINE_QUEUE, PUBLISH_ACTOR
from contracts.errors import Unavailable
from services.courses import actors, courses, jobs, pipeline
from tests.unit.courses_fakes import (
    TEACHER,
    FakeContent,
    FakeEmbedder,
    add_file,
    add_text,
    make_adapters,
    new_course,
    sqlite_sessions,
)
from tests.unit.fakes import RecordingTasks


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return sqlite_sessions(tmp_path)


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.add_middleware(CurrentMessage())
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()


def run_job(broker: StubBroker, adapters: pipeline.Adapters, job_id: str) -> None:
    """Register the actor as the workers do (quicker back-offs), send the job, drain the queue."""
    options = {**actors.OPTIONS, "min_backoff": 10, "max_backoff": 40}
    built: list[object] = []

    def build(settings: object) -> pipeline.Adapters:
        built.append(settings)
        return adapters

    actor = dramatiq.actor(
        broker=broker, actor_name=PUBLISH_ACTOR, queue_name=PIPELINE_QUEUE, **options
    )(actors.PublishCourse(build))
    actor.send(job_id)
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join(PIPELINE_QUEUE, fail_fast=False, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    assert len(built) == 1  # the adapters are built once, on the first job


@pytest.fixture
def job_id(sessions, tmp_path) -> str:
    course = new_course(sessions)
    add_text(sessions, course.id, "Generators yield values one at a time. " * 40)
    return jobs.publish(sessions, RecordingTasks(), course.id, TEACHER).id


def job(sessions: sessionmaker, job_id: str):
    return jobs.get_job(sessions, job_id, TEACHER)


def test_a_job_runs_to_the_end(broker, sessions, tmp_path, job_id) -> None:
    content = FakeContent()
    run_job(broker, make_adapters(sessions, tmp_path, content=content), job_id)
    assert (job(sessions, job_id).status, job(sessions, job_id).percent) == ("succeeded", 100)
    assert content.count(job(sessions, job_id).course_id) == len(content.sent) > 0
    assert broker.dead_letters == []


def test_a_transient_failure_is_retried_and_resumed(broker, sessions, tmp_path, job_id) -> None:
    content = FakeContent(fail_calls={2, 3})  # down for two calls, from the second batch
    embedder = FakeEmbedder()
    run_job(broker, make_adapters(sessions, tmp_path, content=content, embedder=embedder), job_id)
    done = job(sessions, job_id)
    assert (done.status, done.error) == ("succeeded", None)
    assert content.calls == math.ceil(len(content.sent) / 2) + 2  # two calls failed
    assert len(content.sent) == len(set(content.sent)) == content.count(done.course_id)
    # The batch whose indexing failed (the last chunk) is embedded again by each of the two
    # retries; the indexed ones never.
    embedded = [text for batch in embedder.batches for text in batch]
    assert len(embedded) == len(content.sent) + 2 and embedded[-1] == embedded[-2] == embedded[-3]
    assert broker.dead_letters == []


def test_a_permanent_failure_fails_at_once(broker, sessions, tmp_path) -> None:
    course = new_course(sessions)
    add_file(sessions, course.id, tmp_path, "broken.vtt", b"WEBVTT\n\nnot a cue\n", "vtt")
    job_id = jobs.publish(sessions, RecordingTasks(), course.id, TEACHER).id
    embedder = FakeEmbedder()
    run_job(broker, make_adapters(sessions, tmp_path, embedder=embedder), job_id)
    failed = job(sessions, job_id)
    assert failed.status == "failed" and "'broken.vtt'" in (failed.error or "")
    assert courses.get_course(sessions, course.id, TEACHER).status == "failed"
    assert len(broker.dead_letters) == 1  # failed at once: no retry
    assert broker.dead_letters[0].options.get("retries", 0) == 0
    assert embedder.batches == []


def test_retries_are_bounded(broker, sessions, tmp_path, job_id) -> None:
    content = FakeContent(fail_from=1)
    run_job(broker, make_adapters(sessions, tmp_path, content=content), job_id)
    failed = job(sessions, job_id)
    assert failed.status == "failed"
    assert failed.error == (
        f"gave up after {actors.MAX_RETRIES + 1} attempts: the content service is down"
    )
    assert content.calls == actors.MAX_RETRIES + 1
    assert len(broker.dead_letters) == 1


def test_retry_when_follows_the_pipeline() -> None:
    assert actors.retry_when(0, Unavailable("down")) is True
    assert actors.retry_when(actors.MAX_RETRIES, Unavailable("down")) is False
    assert actors.retry_when(0, pipeline.PublishError("no lessons")) is False


class LoadCounting(FakeEmbedder):
    """An embedder that counts how often it was loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self) -> None:
        self.loads += 1


def test_warming_builds_the_adapters_once_and_loads_the_model(sessions, tmp_path) -> None:
    built: list[object] = []
    embedder = LoadCounting()

    def build(settings: object) -> pipeline.Adapters:
        built.append(settings)
        return make_adapters(sessions, tmp_path, embedder=embedder)

    publish = actors.PublishCourse(build)
    publish.warm()
    publish.warm()
    assert len(built) == 1 and embedder.loads == 2
    assert publish.adapters() is publish.adapters()


def test_a_failed_warm_up_waits_for_the_first_job() -> None:
    def build(settings: object) -> pipeline.Adapters:
        raise ConnectionError("mongo is down")

    actors.PublishCourse(build).warm()  # logged, not raised
