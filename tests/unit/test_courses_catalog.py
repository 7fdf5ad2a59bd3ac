"""Courses and lessons on SQLite: who may see and change them, and what they report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.courses import CoursePatch, CourseQuery, LessonCreate, StoredFile
from contracts.errors import Conflict, Forbidden, NotFound
from services.courses import courses, enrollment, jobs
from tests.unit.courses_fakes import (
    ADMIN,
    OTHER_TEACHER,
    STUDENT,
    TEACHER,
    add_text,
    new_course,
    published_course,
    sqlite_sessions,
)
from tests.unit.fakes import FakeCache, RecordingSink, RecordingTasks


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return sqlite_sessions(tmp_path)


def test_a_new_course_is_an_empty_draft_of_its_instructor(sessions) -> None:
    course = new_course(sessions, capacity=30)
    assert (course.instructor_id, course.status, course.capacity) == (TEACHER.user_id, "draft", 30)
    assert (course.enrolled, course.lessons, course.published_at) == (0, 0, None)


def test_a_draft_is_seen_by_its_instructor_and_admins_only(sessions) -> None:
    course = new_course(sessions)
    assert courses.get_course(sessions, course.id, TEACHER).id == course.id
    assert courses.get_course(sessions, course.id, ADMIN).id == course.id
    for stranger in (STUDENT, OTHER_TEACHER):
        with pytest.raises(NotFound):
            courses.get_course(sessions, course.id, stranger)
        with pytest.raises(NotFound):
            courses.list_lessons(sessions, course.id, stranger)


def test_changing_a_course_one_does_not_teach(sessions) -> None:
    draft, published = new_course(sessions), published_course(sessions)
    patch = CoursePatch(title="Mine now")
    with pytest.raises(NotFound):  # invisible: as if it did not exist
        courses.update_course(sessions, draft.id, OTHER_TEACHER, patch)
    with pytest.raises(Forbidden):  # visible, not yours
        courses.update_course(sessions, published.id, OTHER_TEACHER, patch)
    with pytest.raises(Forbidden):
        courses.add_lesson(sessions, published.id, STUDENT, LessonCreate(title="x", text="y"))
    assert courses.update_course(sessions, published.id, ADMIN, patch).title == "Mine now"


def test_update_changes_only_the_given_fields(sessions) -> None:
    course = new_course(sessions, capacity=10)
    changed = courses.update_course(sessions, course.id, TEACHER, CoursePatch(description="New"))
    assert (changed.title, changed.description, changed.capacity) == ("Python", "New", 10)
    assert changed.updated_at >= course.updated_at


def test_capacity_cannot_drop_below_the_students_enrolled(sessions) -> None:
    course = published_course(sessions, capacity=5)
    for user_id in (10, 11, 12):
        enrollment.enroll(sessions, RecordingSink(), FakeCache(), course.id, user_id)
    with pytest.raises(Conflict):
        courses.update_course(sessions, course.id, TEACHER, CoursePatch(capacity=2))
    assert (
        courses.update_course(sessions, course.id, TEACHER, CoursePatch(capacity=3)).capacity == 3
    )


def test_unknown_courses_are_not_found(sessions) -> None:
    for call in (
        lambda: courses.get_course(sessions, 404, ADMIN),
        lambda: courses.update_course(sessions, 404, ADMIN, CoursePatch(title="x")),
        lambda: courses.check_access(sessions, 404, ADMIN),
        lambda: courses.list_lessons(sessions, 404, ADMIN),
    ):
        with pytest.raises(NotFound):
            call()


def test_the_list_holds_published_courses_newest_first(sessions) -> None:
    new_course(sessions)  # a draft: never listed
    first, second = published_course(sessions), published_course(sessions)
    page = courses.list_courses(sessions, CourseQuery())
    assert [c.id for c in page.items] == [second.id, first.id]
    assert page.total == 2
    assert all(c.status == "published" for c in page.items)
    assert [c.id for c in courses.list_courses(sessions, CourseQuery(limit=1, offset=1)).items] == [
        first.id
    ]


def test_lessons_go_last_by_default_or_where_asked(sessions) -> None:
    course = new_course(sessions)
    one = add_text(sessions, course.id, title="One")
    three = add_text(sessions, course.id, title="Three")
    two = add_text(sessions, course.id, title="Two", position=1)
    listed = courses.list_lessons(sessions, course.id, TEACHER)
    assert [(lesson.title, lesson.position) for lesson in listed] == [
        ("One", 0),
        ("Two", 1),
        ("Three", 2),
    ]
    assert {one.id, two.id, three.id} == {lesson.id for lesson in listed}
    assert courses.get_course(sessions, course.id, TEACHER).lessons == 3


def test_a_lesson_reports_its_kind_and_size(sessions) -> None:
    course = new_course(sessions)
    text = add_text(sessions, course.id, text="Exactly 21 characters")
    stored = StoredFile(sha256="a" * 64, size=2048, kind="pdf", filename="slides.pdf")
    pdf = courses.add_lesson(sessions, course.id, TEACHER, LessonCreate(title="PDF", file=stored))
    assert (text.kind, text.size) == ("text", 21)
    assert (pdf.kind, pdf.size, pdf.course_id) == ("pdf", 2048, course.id)


def test_no_lesson_while_the_course_is_being_published(sessions) -> None:
    course = new_course(sessions)
    add_text(sessions, course.id)
    jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)
    with pytest.raises(Conflict):
        add_text(sessions, course.id)
    assert courses.get_course(sessions, course.id, TEACHER).lessons == 1


def test_a_published_course_is_open_to_all_but_its_content_to_students(sessions) -> None:
    course = published_course(sessions)
    assert courses.get_course(sessions, course.id, STUDENT).status == "published"
    assert len(courses.list_lessons(sessions, course.id, STUDENT)) == 2
    with pytest.raises(Forbidden):
        courses.check_access(sessions, course.id, STUDENT)
    enrollment.enroll(sessions, RecordingSink(), FakeCache(), course.id, STUDENT.user_id)
    assert courses.check_access(sessions, course.id, STUDENT).id == course.id


def test_check_access_on_a_draft(sessions) -> None:
    course = new_course(sessions)
    assert courses.check_access(sessions, course.id, TEACHER).id == course.id
    assert courses.check_access(sessions, course.id, ADMIN).id == course.id
    with pytest.raises(NotFound):
        courses.check_access(sessions, course.id, STUDENT)
