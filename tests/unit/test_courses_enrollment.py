"""Enrolment, the student's course list and progress, on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.courses import EnrollmentCreated, ProgressUpdated
from contracts.errors import Conflict, Forbidden, NotFound
from services.courses import courses, enrollment, jobs, progress
from services.courses.models import Progress
from tests.unit.courses_fakes import (
    STUDENT,
    TEACHER,
    add_text,
    new_course,
    published_course,
    sqlite_sessions,
)
from tests.unit.fakes import FakeCache, RecordingSink, RecordingTasks

ADA, BOB, CY = 10, 11, 12


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return sqlite_sessions(tmp_path)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def cache() -> FakeCache:
    return FakeCache()


def enrolled(sessions: sessionmaker, course_id: int) -> int:
    return courses.get_course(sessions, course_id, TEACHER).enrolled


def progress_rows(sessions: sessionmaker) -> list[tuple[int, int, int]]:
    with sessions() as session:
        rows = session.execute(select(Progress.course_id, Progress.user_id, Progress.completed))
        return [tuple(row) for row in rows]


# ---------------------------------------------------------------- enrol


def test_enrol_counts_the_student_and_stores_the_event(sessions, sink, cache) -> None:
    course = published_course(sessions)
    out = enrollment.enroll(sessions, sink, cache, course.id, ADA)
    assert (out.course_id, out.user_id) == (course.id, ADA)
    assert enrolled(sessions, course.id) == 1
    assert [type(e) for e in sink.events] == [EnrollmentCreated]
    assert (sink.events[0].course_id, sink.events[0].user_id) == (course.id, ADA)


def test_enrolling_twice_is_a_conflict_and_counts_once(sessions, sink, cache) -> None:
    course = published_course(sessions)
    enrollment.enroll(sessions, sink, cache, course.id, ADA)
    with pytest.raises(Conflict, match="already enrolled"):
        enrollment.enroll(sessions, sink, cache, course.id, ADA)
    assert enrolled(sessions, course.id) == 1
    assert len(sink.events) == 1


def test_a_full_course_refuses_the_next_student(sessions, sink, cache) -> None:
    course = published_course(sessions, capacity=2)
    enrollment.enroll(sessions, sink, cache, course.id, ADA)
    enrollment.enroll(sessions, sink, cache, course.id, BOB)
    with pytest.raises(Conflict, match="full"):
        enrollment.enroll(sessions, sink, cache, course.id, CY)
    assert enrolled(sessions, course.id) == 2
    assert len(sink.events) == 2


def test_a_course_not_published_is_not_open(sessions, sink, cache) -> None:
    draft = new_course(sessions)
    with pytest.raises(NotFound):  # a draft does not exist for a student
        enrollment.enroll(sessions, sink, cache, draft.id, ADA)
    with pytest.raises(Conflict, match="not open"):  # its instructor sees it, it is not open
        enrollment.enroll(sessions, sink, cache, draft.id, TEACHER.user_id)
    course = published_course(sessions)
    add_text(sessions, course.id, "A new lesson.")
    jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)  # published again: closed
    with pytest.raises(Conflict, match="not open"):
        enrollment.enroll(sessions, sink, cache, course.id, ADA)
    with pytest.raises(NotFound):
        enrollment.enroll(sessions, sink, cache, 404, ADA)
    assert sink.events == []


def test_my_courses_newest_enrolment_first_and_cached(sessions, sink, cache) -> None:
    first, second = published_course(sessions), published_course(sessions)
    enrollment.enroll(sessions, sink, cache, first.id, ADA)
    enrollment.enroll(sessions, sink, cache, second.id, ADA)
    mine = enrollment.my_courses(sessions, cache, ADA)
    assert [m.course.id for m in mine] == [second.id, first.id]
    assert enrollment.cache_key(ADA) in cache.data
    assert enrollment.my_courses(sessions, cache, ADA) == mine  # from the cache
    assert enrollment.my_courses(sessions, cache, BOB) == []


def test_enrolling_drops_the_cached_list(sessions, sink, cache) -> None:
    first, second = published_course(sessions), published_course(sessions)
    enrollment.enroll(sessions, sink, cache, first.id, ADA)
    assert len(enrollment.my_courses(sessions, cache, ADA)) == 1
    enrollment.enroll(sessions, sink, cache, second.id, ADA)
    assert len(enrollment.my_courses(sessions, cache, ADA)) == 2


def test_the_handler_starts_progress_once_and_drops_the_cache(sessions, sink, cache) -> None:
    course = published_course(sessions)
    enrollment.enroll(sessions, sink, cache, course.id, ADA)
    enrollment.my_courses(sessions, cache, ADA)
    event = sink.events[0]
    assert isinstance(event, EnrollmentCreated)
    enrollment.on_enrolled(sessions, cache, event)
    enrollment.on_enrolled(sessions, cache, event)  # redelivered: nothing more
    assert progress_rows(sessions) == [(course.id, ADA, 0)]
    assert enrollment.cache_key(ADA) not in cache.data


# ---------------------------------------------------------------- progress


@pytest.fixture
def course_with_student(sessions, sink, cache):
    course = published_course(sessions, lessons=3)
    enrollment.enroll(sessions, sink, cache, course.id, ADA)
    sink.events.clear()
    lessons = courses.list_lessons(sessions, course.id, TEACHER)
    return course, lessons


def test_progress_starts_at_zero(sessions, course_with_student) -> None:
    course, _ = course_with_student
    out = progress.get_progress(sessions, course.id, ADA)
    assert (out.completed, out.total, out.percent) == (0, 3, 0)


def test_completing_lessons_moves_progress_and_emits(sessions, sink, course_with_student) -> None:
    course, lessons = course_with_student
    first = progress.complete_lesson(sessions, sink, lessons[0].id, ADA)
    assert (first.completed, first.total, first.percent) == (1, 3, 33)
    second = progress.complete_lesson(sessions, sink, lessons[2].id, ADA)
    assert (second.completed, second.percent) == (2, 66)
    assert progress.get_progress(sessions, course.id, ADA) == second
    assert [(e.lesson_id, e.completed, e.total) for e in sink.events] == [
        (lessons[0].id, 1, 3),
        (lessons[2].id, 2, 3),
    ]
    assert all(isinstance(e, ProgressUpdated) for e in sink.events)


def test_completing_twice_changes_and_emits_nothing(sessions, sink, course_with_student) -> None:
    _, lessons = course_with_student
    once = progress.complete_lesson(sessions, sink, lessons[1].id, ADA)
    again = progress.complete_lesson(sessions, sink, lessons[1].id, ADA)
    assert again == once
    assert len(sink.events) == 1


def test_progress_works_before_and_after_the_handler(
    sessions, sink, cache, course_with_student
) -> None:
    course, lessons = course_with_student
    progress.complete_lesson(sessions, sink, lessons[0].id, ADA)  # no progress row yet
    enrollment.on_enrolled(sessions, cache, EnrollmentCreated(course_id=course.id, user_id=ADA))
    assert progress_rows(sessions) == [(course.id, ADA, 1)]  # the late handler resets nothing
    assert progress.complete_lesson(sessions, sink, lessons[1].id, ADA).completed == 2


def test_completing_all_lessons_is_100_percent(sessions, sink, course_with_student) -> None:
    _, lessons = course_with_student
    for lesson in lessons:
        last = progress.complete_lesson(sessions, sink, lesson.id, ADA)
    assert (last.completed, last.percent) == (3, 100)


def test_only_enrolled_students_complete_lessons(sessions, sink, course_with_student) -> None:
    course, lessons = course_with_student
    with pytest.raises(Forbidden):
        progress.complete_lesson(sessions, sink, lessons[0].id, BOB)
    with pytest.raises(Forbidden):  # teaching it is not being enrolled
        progress.complete_lesson(sessions, sink, lessons[0].id, TEACHER.user_id)
    with pytest.raises(NotFound):
        progress.complete_lesson(sessions, sink, 404, ADA)
    with pytest.raises(NotFound):
        progress.get_progress(sessions, course.id, BOB)
    with pytest.raises(NotFound):
        progress.get_progress(sessions, 404, ADA)
    assert sink.events == []


def test_a_lesson_of_an_unpublished_course_is_not_found(sessions, sink) -> None:
    draft = new_course(sessions)
    lesson = add_text(sessions, draft.id)
    with pytest.raises(NotFound):
        progress.complete_lesson(sessions, sink, lesson.id, STUDENT.user_id)


def test_enrolment_rolls_back_when_the_event_cannot_be_stored(sessions, cache) -> None:
    class BrokenSink(RecordingSink):
        def add(self, session, event) -> None:
            raise RuntimeError("outbox unavailable")

    course = published_course(sessions, capacity=1)
    with pytest.raises(RuntimeError):
        enrollment.enroll(sessions, BrokenSink(), cache, course.id, ADA)
    assert enrolled(sessions, course.id) == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Progress)) == 0
    enrollment.enroll(sessions, RecordingSink(), cache, course.id, BOB)  # the seat is free


def test_a_cache_outage_after_the_commit_does_not_undo_the_answer(sessions, sink) -> None:
    class DownCache(FakeCache):
        def delete(self, *keys: str) -> int:
            raise ConnectionError("redis is away")

    course = published_course(sessions)
    out = enrollment.enroll(sessions, sink, DownCache(), course.id, ADA)
    assert out.user_id == ADA and len(sink.events) == 1
