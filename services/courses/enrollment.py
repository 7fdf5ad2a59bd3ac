"""Enrolment: one conditional UPDATE keeps a course within its capacity on every engine."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pydantic import TypeAdapter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Viewer
from contracts.courses import EnrollmentCreated, EnrollmentOut, MyCourse
from contracts.errors import Conflict
from mesh.outbox import EventSink
from mesh.sql import affected
from services.courses import access, progress
from services.courses.models import Course, Enrollment, utcnow

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 600
ALREADY_ENROLLED = "already enrolled in this course"
MY_COURSES = TypeAdapter(list[MyCourse])


class Cache(Protocol):
    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: str, ex: int | None = None) -> Any: ...
    def delete(self, *keys: str) -> Any: ...


def cache_key(user_id: int) -> str:
    """Where a student's enrolled courses are cached."""
    return f"courses:mine:{user_id}"


def _out(enrollment: Enrollment) -> EnrollmentOut:
    return EnrollmentOut.model_validate(enrollment, from_attributes=True)


def _find(sessions: sessionmaker, course_id: int, user_id: int) -> Enrollment | None:
    with sessions() as session:
        return session.scalar(
            select(Enrollment).where(
                Enrollment.course_id == course_id, Enrollment.user_id == user_id
            )
        )


def _take_seat(session: Session, course_id: int, user_id: int) -> None:
    """Count one more student only if the course is published and has room: one UPDATE,
    so concurrent students never exceed the capacity (the row lock orders them).

    Refused: NotFound for a course the student cannot see (a draft), Conflict for one that
    is not open (being published again, or failed) or full.
    """
    taken = affected(
        session,
        update(Course)
        .where(
            Course.id == course_id,
            Course.status == "published",
            (Course.capacity.is_(None)) | (Course.enrolled < Course.capacity),
        )
        .values(enrolled=Course.enrolled + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if taken == 1:
        return
    course = access.seen(session, course_id, Viewer(user_id=user_id))  # a draft: NotFound
    if course.status != "published":
        raise Conflict("course is not open for enrolment")
    raise Conflict("course is full")


def enroll(
    sessions: sessionmaker, events: EventSink, cache: Cache, course_id: int, user_id: int
) -> EnrollmentOut:
    """Enrol a student in one transaction: the seat, the enrolment, ``enrollment.created``."""
    if _find(sessions, course_id, user_id) is not None:
        raise Conflict(ALREADY_ENROLLED)
    try:
        with sessions() as session, session.begin():
            _take_seat(session, course_id, user_id)
            enrollment = Enrollment(course_id=course_id, user_id=user_id, enrolled_at=utcnow())
            session.add(enrollment)
            session.flush()
            events.add(session, EnrollmentCreated(course_id=course_id, user_id=user_id))
    except IntegrityError:
        # The same student, concurrently: the unique constraint refused the second row,
        # and the rollback gave its seat back.
        raise Conflict(ALREADY_ENROLLED) from None
    _forget(cache, user_id)
    log.info("student enrolled", extra={"course_id": course_id, "user_id": user_id})
    return _out(enrollment)


def _forget(cache: Cache, user_id: int) -> None:
    """Drop the student's cached list now, for read-your-writes; a failure is only logged:
    the enrolment is committed, and the handler of its event drops the list too."""
    try:
        cache.delete(cache_key(user_id))
    except Exception:
        log.warning("cached course list not dropped", extra={"user_id": user_id}, exc_info=True)


def my_courses(sessions: sessionmaker, cache: Cache, user_id: int) -> list[MyCourse]:
    """The student's courses, most recent enrolment first (cached for ten minutes)."""
    key = cache_key(user_id)
    cached = cache.get(key)
    if cached:
        return MY_COURSES.validate_json(cached)
    with sessions() as session:
        rows = session.execute(
            select(Course, Enrollment.enrolled_at)
            .join(Enrollment, Enrollment.course_id == Course.id)
            .where(Enrollment.user_id == user_id)
            .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
        ).all()
    mine = [MyCourse(course=access.to_out(course), enrolled_at=at) for course, at in rows]
    cache.set(key, MY_COURSES.dump_json(mine).decode(), ex=CACHE_TTL_SECONDS)
    return mine


def on_enrolled(sessions: sessionmaker, cache: Cache, event: EnrollmentCreated) -> None:
    """The handler of ``enrollment.created``: progress at 0 (once), the student's cache dropped."""
    progress.start(sessions, event.course_id, event.user_id)
    cache.delete(cache_key(event.user_id))
