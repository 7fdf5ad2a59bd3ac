"""Courses on SQLite, PostgreSQL and MariaDB: the capacity race and its relatives, on threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.courses import LESSON_TEXT_MAX, CourseCreate, LessonCreate
from contracts.errors import Conflict
from mesh.outbox import OutboxHandle
from services.courses import courses, enrollment, jobs, progress
from services.courses.models import Base, Completion, Enrollment, PublishJob, outbox
from tests.integration.engines import SERVERS, fresh_schema
from tests.unit.courses_fakes import RUNNER, TEACHER, published_course
from tests.unit.fakes import FakeCache, RecordingTasks

pytestmark = pytest.mark.integration

STUDENTS = 20
CAPACITY = 5


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, Base.metadata, tmp_path) as factory:
        yield factory


@pytest.fixture
def events() -> OutboxHandle:
    return OutboxHandle(outbox, on_commit=lambda _session: None)


def at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i < n on n threads released together: each result or exception."""
    start = threading.Barrier(n)
    outcomes: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = call(i)
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def count(sessions: sessionmaker, column: Any, *where: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def failures(outcomes: list[Any]) -> list[Exception]:
    return [o for o in outcomes if isinstance(o, Exception)]


def test_concurrent_students_never_exceed_the_capacity(sessions, events) -> None:
    course = published_course(sessions, capacity=CAPACITY)
    outcomes = at_once(
        STUDENTS, lambda i: enrollment.enroll(sessions, events, FakeCache(), course.id, 100 + i)
    )
    refused = failures(outcomes)
    assert len(refused) == STUDENTS - CAPACITY
    assert all(isinstance(e, Conflict) and "full" in str(e) for e in refused), refused
    assert courses.get_course(sessions, course.id, TEACHER).enrolled == CAPACITY
    assert count(sessions, Enrollment.id) == CAPACITY
    assert count(sessions, outbox.c.id, outbox.c.event_type == "enrollment.created") == CAPACITY


def test_one_student_enrolling_many_times_at_once_counts_once(sessions, events) -> None:
    course = published_course(sessions)
    outcomes = at_once(8, lambda _: enrollment.enroll(sessions, events, FakeCache(), course.id, 7))
    assert len(failures(outcomes)) == 7
    assert all(isinstance(e, Conflict) for e in failures(outcomes))
    assert courses.get_course(sessions, course.id, TEACHER).enrolled == 1
    assert count(sessions, outbox.c.id, outbox.c.event_type == "enrollment.created") == 1


def test_concurrent_completions_count_each_lesson_once(sessions, events) -> None:
    course = published_course(sessions, lessons=4)
    enrollment.enroll(sessions, events, FakeCache(), course.id, 7)
    lessons = courses.list_lessons(sessions, course.id, TEACHER)
    # Each lesson completed twice at once, while the progress row is being created.
    outcomes = at_once(
        8, lambda i: progress.complete_lesson(sessions, events, lessons[i % 4].id, 7)
    )
    assert failures(outcomes) == []
    final = progress.get_progress(sessions, course.id, 7)
    assert (final.completed, final.total, final.percent) == (4, 4, 100)
    assert count(sessions, Completion.id) == 4
    assert count(sessions, outbox.c.id, outbox.c.event_type == "progress.updated") == 4


def test_one_publish_wins_a_race(sessions) -> None:
    course = courses.create_course(sessions, TEACHER.user_id, CourseCreate(title="Race"))
    courses.add_lesson(sessions, course.id, TEACHER, LessonCreate(title="One", text="Text."))
    tasks = RecordingTasks()
    outcomes = at_once(6, lambda _: jobs.publish(sessions, tasks, course.id, TEACHER))
    assert len(failures(outcomes)) == 5
    assert count(sessions, PublishJob.id) == 1 == len(tasks.sent)
    job = next(o for o in outcomes if not isinstance(o, Exception))
    claims = at_once(4, lambda i: jobs.claim(sessions, job.id, f"message-{i}"))
    assert sum(claim is not None for claim in claims) == 1


def test_a_lesson_holds_the_longest_text_in_any_script(sessions) -> None:
    course = courses.create_course(sessions, TEACHER.user_id, CourseCreate(title="Long"))
    text = "é" * LESSON_TEXT_MAX  # two bytes each: beyond MySQL's 64 KiB TEXT
    lesson = courses.add_lesson(sessions, course.id, TEACHER, LessonCreate(title="L", text=text))
    with sessions() as session:
        assert courses.lessons_of(session, course.id)[0].text == text
    assert lesson.size == LESSON_TEXT_MAX


def test_a_job_succeeds_once_with_its_event(sessions, events) -> None:
    course = published_course(sessions)
    courses.add_lesson(sessions, course.id, TEACHER, LessonCreate(title="More", text="More."))
    job = jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    outcomes = at_once(4, lambda _: jobs.succeed(sessions, events, claim, chunks=3))
    assert len(failures(outcomes)) == 3
    assert count(sessions, outbox.c.id, outbox.c.event_type == "course.published") == 1
    assert jobs.get_job(sessions, job.id, TEACHER).status == "succeeded"
