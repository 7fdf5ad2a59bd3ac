"""Courses and their lessons: written by their instructor, read by whoever may see them."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Viewer
from contracts.courses import (
    CourseCreate,
    CourseOut,
    CoursePage,
    CoursePatch,
    CourseQuery,
    LessonCreate,
    LessonOut,
)
from contracts.errors import Conflict, Forbidden, NotFound
from mesh.sql import affected
from services.courses import access
from services.courses.models import Course, Lesson, utcnow

BEING_PUBLISHED = "the course is being published: try again when its job is done"


def lesson_out(lesson: Lesson) -> LessonOut:
    return LessonOut.model_validate(lesson, from_attributes=True)


def create_course(sessions: sessionmaker, instructor_id: int, request: CourseCreate) -> CourseOut:
    """A new draft course of ``instructor_id`` (the gateway checks the caller is an instructor)."""
    with sessions() as session, session.begin():
        now = utcnow()
        course = Course(
            instructor_id=instructor_id,
            title=request.title,
            description=request.description,
            capacity=request.capacity,
            enrolled=0,
            lesson_count=0,
            status="draft",
            created_at=now,
            updated_at=now,
        )
        session.add(course)
        session.flush()
    return access.to_out(course)


def update_course(
    sessions: sessionmaker, course_id: int, viewer: Viewer, patch: CoursePatch
) -> CourseOut:
    """Change the given fields; a capacity below the students already enrolled is Conflict."""
    values = patch.model_dump(exclude_unset=True)
    with sessions() as session, session.begin():
        course = access.owned(session, course_id, viewer)
        statement = update(Course).where(Course.id == course.id)
        if "capacity" in values:
            # In the UPDATE itself, so a concurrent enrolment cannot slip past the check.
            statement = statement.where(Course.enrolled <= values["capacity"])
        changed = affected(
            session,
            statement.values(**values, updated_at=utcnow()).execution_options(
                synchronize_session=False
            ),
        )
        if changed != 1:
            raise Conflict("more students are enrolled than this capacity")
        session.refresh(course)
    return access.to_out(course)


def list_courses(sessions: sessionmaker, query: CourseQuery) -> CoursePage:
    """Published courses, newest (first published most recently) first."""
    published = Course.status == "published"
    with sessions() as session:
        total = session.scalar(select(func.count(Course.id)).where(published)) or 0
        courses = session.scalars(
            select(Course)
            .where(published)
            .order_by(Course.published_at.desc(), Course.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        ).all()
    return CoursePage(
        items=[access.to_out(c) for c in courses],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


def get_course(sessions: sessionmaker, course_id: int, viewer: Viewer) -> CourseOut:
    with sessions() as session:
        return access.to_out(access.seen(session, course_id, viewer))


def check_access(sessions: sessionmaker, course_id: int, viewer: Viewer) -> CourseOut:
    """The course for its instructor, an admin or an enrolled student; NotFound for anyone
    else who cannot see it, Forbidden for anyone else who can."""
    with sessions() as session:
        course = access.find(session, course_id)
        if access.teaches(course, viewer) or access.is_enrolled(session, course.id, viewer.user_id):
            return access.to_out(course)
        if access.is_visible(course):
            raise Forbidden("enrol in the course to see its content")
        raise NotFound(access.COURSE_NOT_FOUND)


# ---------------------------------------------------------------- lessons


def _count_lesson(session: Session, course_id: int) -> None:
    """Count one more lesson, unless the course is being published (Conflict).

    This UPDATE locks the course row, so a concurrent publish waits for the lesson (and
    sees it) or runs first and makes this refuse: a job never misses a lesson it reported.
    """
    counted = affected(
        session,
        update(Course)
        .where(Course.id == course_id, Course.status != "publishing")
        .values(lesson_count=Course.lesson_count + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if counted != 1:
        raise Conflict(BEING_PUBLISHED)


def _place(session: Session, course_id: int, position: int | None) -> int:
    """The new lesson's position: after the last by default; else the lessons from
    ``position`` on move one down to make room."""
    if position is None:
        last = session.scalar(
            select(func.max(Lesson.position)).where(Lesson.course_id == course_id)
        )
        return 0 if last is None else last + 1
    session.execute(
        update(Lesson)
        .where(Lesson.course_id == course_id, Lesson.position >= position)
        .values(position=Lesson.position + 1)
        .execution_options(synchronize_session=False)
    )
    return position


def add_lesson(
    sessions: sessionmaker, course_id: int, viewer: Viewer, request: LessonCreate
) -> LessonOut:
    """The instructor adds a lesson: JSON text kept here, or a reference to a stored file."""
    with sessions() as session, session.begin():
        course = access.owned(session, course_id, viewer)
        _count_lesson(session, course.id)
        lesson = Lesson(
            course_id=course.id,
            title=request.title,
            position=_place(session, course.id, request.position),
            created_at=utcnow(),
        )
        if request.file is not None:
            lesson.kind, lesson.size = request.file.kind, request.file.size
            lesson.file_sha256, lesson.filename = request.file.sha256, request.file.filename
        else:
            assert request.text is not None  # the contract gives exactly one
            lesson.kind, lesson.size, lesson.text = "text", len(request.text), request.text
        session.add(lesson)
        session.flush()
    return lesson_out(lesson)


def lessons_of(session: Session, course_id: int) -> list[Lesson]:
    """A course's lessons in order."""
    return list(
        session.scalars(
            select(Lesson).where(Lesson.course_id == course_id).order_by(Lesson.position, Lesson.id)
        )
    )


def list_lessons(sessions: sessionmaker, course_id: int, viewer: Viewer) -> list[LessonOut]:
    """The syllabus, for whoever can see the course."""
    with sessions() as session:
        course = access.seen(session, course_id, viewer)
        return [lesson_out(lesson) for lesson in lessons_of(session, course.id)]
