"""Who may see and change a course: the rules every courses function applies.

A course is visible to everyone once it has been published (``published_at`` is set; it
stays visible while a new version is published, so enrolled students keep their access).
Before that it is a draft that only its instructor and administrators can see: to anyone
else it does not exist (NotFound). Changing a visible course one does not teach is Forbidden.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.base import Viewer, is_id
from contracts.courses import CourseOut
from contracts.errors import Forbidden, NotFound
from services.courses.models import Course, Enrollment

COURSE_NOT_FOUND = "course not found"


def to_out(course: Course) -> CourseOut:
    return CourseOut.model_validate(
        {
            "id": course.id,
            "instructor_id": course.instructor_id,
            "title": course.title,
            "description": course.description,
            "capacity": course.capacity,
            "enrolled": course.enrolled,
            "status": course.status,
            "lessons": course.lesson_count,
            "published_at": course.published_at,
            "created_at": course.created_at,
            "updated_at": course.updated_at,
        }
    )


def is_visible(course: Course) -> bool:
    """Seen by everyone: published at least once."""
    return course.published_at is not None


def teaches(course: Course, viewer: Viewer) -> bool:
    """The viewer may change the course: its instructor, or an administrator."""
    return viewer.is_admin or course.instructor_id == viewer.user_id


def find(session: Session, course_id: int) -> Course:
    """The course, or NotFound."""
    course = session.get(Course, course_id) if is_id(course_id) else None
    if course is None:
        raise NotFound(COURSE_NOT_FOUND)
    return course


def seen(session: Session, course_id: int, viewer: Viewer) -> Course:
    """The course if the viewer can see it; NotFound otherwise."""
    course = find(session, course_id)
    if not (is_visible(course) or teaches(course, viewer)):
        raise NotFound(COURSE_NOT_FOUND)
    return course


def owned(session: Session, course_id: int, viewer: Viewer) -> Course:
    """The course if the viewer may change it; Forbidden if visible, NotFound if not."""
    course = seen(session, course_id, viewer)
    if not teaches(course, viewer):
        raise Forbidden("only the course's instructor can change it")
    return course


def is_enrolled(session: Session, course_id: int, user_id: int) -> bool:
    found = session.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course_id, Enrollment.user_id == user_id
        )
    )
    return found is not None
