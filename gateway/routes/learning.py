"""The learner's and the publisher's own views: /api/me/courses, /api/lessons/{id}/complete,
/api/jobs/{id}; and the administrators' /api/jobs."""

from __future__ import annotations

from flask import Blueprint

from contracts.courses import JobOut, ProgressOut, RecentJobsQuery
from gateway.api import endpoint
from gateway.auth import current_user_id, current_viewer
from gateway.cache import response_cache
from gateway.deps import services
from gateway.routes.courses import PROGRESS, progress_key
from gateway.schemas import JobList, MyCourseList

bp = Blueprint("learning", __name__, url_prefix="/api")


@bp.get("/me/courses")
@endpoint(
    "The courses the caller is enrolled in", tag="courses", auth="access", response=MyCourseList
)
def my_courses() -> MyCourseList:
    return MyCourseList(items=services().courses.my_courses(current_user_id()))


@bp.post("/lessons/<id:lesson_id>/complete")
@endpoint(
    "Mark a lesson done (enrolled students; idempotent)",
    tag="courses",
    auth="access",
    response=ProgressOut,
    errors=(403,),
)
def complete(lesson_id: int) -> ProgressOut:
    user_id = current_user_id()
    done = services().courses.complete_lesson(lesson_id, user_id)
    response_cache().invalidate(PROGRESS, progress_key(done.course_id, user_id))
    return done


@bp.get("/jobs/<job:job_id>")
@endpoint(
    "A publishing job: status, step and percent",
    tag="courses",
    auth="access",
    response=JobOut,
)
def get_job(job_id: str) -> JobOut:
    return services().courses.get_job(job_id, current_viewer())


@bp.get("/jobs")
@endpoint(
    "The newest publishing jobs of every course (administrators)",
    tag="courses",
    auth="admin",
    query=RecentJobsQuery,
    response=JobList,
)
def recent_jobs(query: RecentJobsQuery) -> JobList:
    return JobList(items=services().courses.recent_jobs(query, current_viewer()))
