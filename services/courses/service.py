"""The courses service: entrypoints only (the pipeline runs in the Dramatiq workers)."""

from __future__ import annotations

from typing import Any

from nameko.timer import timer

from contracts.base import Id, Viewer, parse_event
from contracts.courses import (
    CourseCreate,
    CourseOut,
    CoursePage,
    CoursePatch,
    CourseQuery,
    EnrollmentCreated,
    EnrollmentOut,
    JobId,
    JobOut,
    LessonCreate,
    LessonOut,
    MyCourse,
    ProgressOut,
    RecentJobsQuery,
)
from mesh.events import handle_event
from mesh.outbox import Outbox
from mesh.providers import CorrelationContext, Redis
from mesh.rpc import rpc
from mesh.service_metrics import ServiceMetrics
from mesh.sql import Database
from mesh.tasks import TaskQueue
from mesh.typed import expose
from services.courses import courses, enrollment, jobs, progress
from services.courses.models import outbox, utcnow

REQUEUE_INTERVAL = 15
"""Seconds between two looks for jobs whose message may be lost (see ``jobs.requeue_stale``)."""


class CoursesService:
    """Satisfies ``contracts.courses.CoursesApi``; handles its own ``enrollment.created``."""

    name = "courses"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    db = Database("courses")
    events = Outbox("courses", outbox)
    cache = Redis()
    tasks = TaskQueue()

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def create_course(self, instructor_id: Id, course: CourseCreate) -> CourseOut:
        return courses.create_course(self.db, instructor_id, course)

    @expose
    def update_course(self, course_id: Id, viewer: Viewer, patch: CoursePatch) -> CourseOut:
        return courses.update_course(self.db, course_id, viewer, patch)

    @expose
    def list_courses(self, query: CourseQuery) -> CoursePage:
        return courses.list_courses(self.db, query)

    @expose
    def get_course(self, course_id: Id, viewer: Viewer) -> CourseOut:
        return courses.get_course(self.db, course_id, viewer)

    @expose
    def add_lesson(self, course_id: Id, viewer: Viewer, lesson: LessonCreate) -> LessonOut:
        return courses.add_lesson(self.db, course_id, viewer, lesson)

    @expose
    def list_lessons(self, course_id: Id, viewer: Viewer) -> list[LessonOut]:
        return courses.list_lessons(self.db, course_id, viewer)

    @expose
    def publish(self, course_id: Id, viewer: Viewer) -> JobOut:
        return jobs.publish(self.db, self.tasks, course_id, viewer)

    @expose
    def get_job(self, job_id: JobId, viewer: Viewer) -> JobOut:
        return jobs.get_job(self.db, job_id, viewer)

    @expose
    def recent_jobs(self, query: RecentJobsQuery, viewer: Viewer) -> list[JobOut]:
        return jobs.recent_jobs(self.db, query, viewer)

    @expose
    def enroll(self, course_id: Id, user_id: Id) -> EnrollmentOut:
        return enrollment.enroll(self.db, self.events, self.cache, course_id, user_id)

    @expose
    def my_courses(self, user_id: Id) -> list[MyCourse]:
        return enrollment.my_courses(self.db, self.cache, user_id)

    @expose
    def complete_lesson(self, lesson_id: Id, user_id: Id) -> ProgressOut:
        return progress.complete_lesson(self.db, self.events, lesson_id, user_id)

    @expose
    def get_progress(self, course_id: Id, user_id: Id) -> ProgressOut:
        return progress.get_progress(self.db, course_id, user_id)

    @expose
    def check_access(self, course_id: Id, viewer: Viewer) -> CourseOut:
        return courses.check_access(self.db, course_id, viewer)

    @timer(interval=REQUEUE_INTERVAL)
    def watch_jobs(self) -> None:
        """Re-send jobs still queued (their message may be lost); fail jobs that stalled."""
        now = utcnow()
        jobs.requeue_stale(self.db, self.tasks, now)
        jobs.fail_stalled(self.db, now)

    @handle_event(EnrollmentCreated)
    def on_enrollment_created(self, body: Any) -> None:
        event = parse_event(EnrollmentCreated, body)
        enrollment.on_enrolled(self.db, self.cache, event)
