"""A student's progress: lessons completed once each, counted in one row per course."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.courses import ProgressOut, ProgressUpdated
from contracts.errors import Conflict, Forbidden, NotFound
from mesh.outbox import EventSink
from mesh.sql import affected, lost_a_race
from services.courses import access
from services.courses.models import Completion, Course, Lesson, Progress, utcnow

log = logging.getLogger(__name__)

ATTEMPTS = 5


def _out(course_id: int, user_id: int, completed: int, total: int) -> ProgressOut:
    percent = min(completed * 100 // total, 100) if total else 0
    return ProgressOut(
        course_id=course_id, user_id=user_id, completed=completed, total=total, percent=percent
    )


def _row(session: Session, course_id: int, user_id: int) -> Progress | None:
    return session.scalar(
        select(Progress).where(Progress.course_id == course_id, Progress.user_id == user_id)
    )


def start(sessions: sessionmaker, course_id: int, user_id: int) -> bool:
    """Create the student's progress row at 0 unless it exists; True if created now."""
    with sessions() as session:
        if _row(session, course_id, user_id) is not None:
            return False
    try:
        with sessions() as session, session.begin():
            session.add(
                Progress(course_id=course_id, user_id=user_id, completed=0, updated_at=utcnow())
            )
    except IntegrityError:
        return False  # created meanwhile: by a completed lesson, or a duplicate event
    return True


def get_progress(sessions: sessionmaker, course_id: int, user_id: int) -> ProgressOut:
    """Completed and total lessons; NotFound unless the student is enrolled."""
    with sessions() as session:
        course = session.get(Course, course_id)
        if course is None or not access.is_enrolled(session, course.id, user_id):
            raise NotFound("not enrolled in this course")
        row = _row(session, course.id, user_id)
        return _out(course.id, user_id, row.completed if row else 0, course.lesson_count)


def _lesson(sessions: sessionmaker, lesson_id: int, user_id: int) -> Lesson:
    """The lesson, if its course is visible (NotFound) and the user enrolled (Forbidden)."""
    with sessions() as session:
        lesson = session.get(Lesson, lesson_id)
        course = session.get(Course, lesson.course_id) if lesson is not None else None
        if lesson is None or course is None or not access.is_visible(course):
            raise NotFound("lesson not found")
        if not access.is_enrolled(session, course.id, user_id):
            raise Forbidden("only students enrolled in the course can complete its lessons")
        return lesson


def _count_up(session: Session, course_id: int, user_id: int) -> int:
    """One more completed lesson in the progress row (created if the handler has not yet)."""
    counted = affected(
        session,
        update(Progress)
        .where(Progress.course_id == course_id, Progress.user_id == user_id)
        .values(completed=Progress.completed + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if counted != 1:
        session.add(
            Progress(course_id=course_id, user_id=user_id, completed=1, updated_at=utcnow())
        )
        session.flush()
    completed = session.scalar(
        select(Progress.completed).where(
            Progress.course_id == course_id, Progress.user_id == user_id
        )
    )
    return int(completed or 0)


def _complete(
    sessions: sessionmaker, events: EventSink, lesson: Lesson, user_id: int
) -> ProgressOut:
    """Record the completion, count it and store ``progress.updated``, in one transaction."""
    with sessions() as session, session.begin():
        session.add(
            Completion(
                lesson_id=lesson.id,
                course_id=lesson.course_id,
                user_id=user_id,
                completed_at=utcnow(),
            )
        )
        session.flush()  # the unique (lesson, user) refuses a second completion here
        completed = _count_up(session, lesson.course_id, user_id)
        total = session.scalar(select(Course.lesson_count).where(Course.id == lesson.course_id))
        event = ProgressUpdated(
            course_id=lesson.course_id,
            user_id=user_id,
            lesson_id=lesson.id,
            completed=completed,
            total=total or 0,
        )
        events.add(session, event)
    return _out(lesson.course_id, user_id, completed, total or 0)


def _already_done(sessions: sessionmaker, lesson_id: int, user_id: int) -> bool:
    with sessions() as session:
        found = session.scalar(
            select(Completion.id).where(
                Completion.lesson_id == lesson_id, Completion.user_id == user_id
            )
        )
    return found is not None


def complete_lesson(
    sessions: sessionmaker, events: EventSink, lesson_id: int, user_id: int
) -> ProgressOut:
    """Mark a lesson done for an enrolled student; a second time changes and emits nothing."""
    lesson = _lesson(sessions, lesson_id, user_id)
    for _ in range(ATTEMPTS):
        if _already_done(sessions, lesson.id, user_id):
            return get_progress(sessions, lesson.course_id, user_id)
        try:
            return _complete(sessions, events, lesson, user_id)
        except (IntegrityError, OperationalError) as exc:
            # The same lesson completed concurrently, the progress row created meanwhile, or
            # a deadlock between the two (MariaDB): everything rolled back; look again.
            if not lost_a_race(exc):
                raise
            log.info("completion raced", extra={"lesson_id": lesson.id, "user_id": user_id})
    raise Conflict("the progress changed meanwhile; try again")
