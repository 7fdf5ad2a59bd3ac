"""/api/courses: instructors write their courses and lessons and publish them; students
browse published courses, enrol, follow their progress and search the content.

A draft course is visible to its instructor (and administrators) only: to anyone else it does
not exist (404). Changing a course one can see but does not teach is 403.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app

from contracts.content import SearchRequest
from contracts.courses import (
    CourseCreate,
    CourseOut,
    CoursePage,
    CoursePatch,
    CourseQuery,
    EnrollmentOut,
    JobOut,
    LessonCreate,
    LessonOut,
    ProgressOut,
)
from gateway.api import Upload, endpoint
from gateway.auth import current_user_id, current_viewer
from gateway.cache import cached_json, response_cache
from gateway.deps import services
from gateway.http import created
from gateway.schemas import LessonJson, LessonList, LessonUpload, PassageList, SearchQuery
from gateway.uploads import store_upload

bp = Blueprint("courses", __name__, url_prefix="/api/courses")

PROGRESS = "progress"


def progress_key(course_id: int, user_id: int) -> str:
    return f"{course_id}:{user_id}"


@bp.post("")
@endpoint(
    "Create a course (a draft)",
    tag="courses",
    auth="instructor",
    status=201,
    body=CourseCreate,
    response=CourseOut,
)
def create_course(body: CourseCreate) -> Response:
    course = services().courses.create_course(current_user_id(), body)
    return created(course, "courses.get_course", course_id=course.id)


@bp.get("")
@endpoint(
    "Published courses, newest first",
    tag="courses",
    auth="access",
    query=CourseQuery,
    response=CoursePage,
)
def list_courses(query: CourseQuery) -> CoursePage:
    return services().courses.list_courses(query)


@bp.get("/<id:course_id>")
@endpoint("One course", tag="courses", auth="access", response=CourseOut)
def get_course(course_id: int) -> CourseOut:
    return services().courses.get_course(course_id, current_viewer())


@bp.patch("/<id:course_id>")
@endpoint(
    "Change a course's fields (its instructor)",
    tag="courses",
    auth="instructor",
    body=CoursePatch,
    response=CourseOut,
    errors=(409,),
)
def update_course(course_id: int, body: CoursePatch) -> CourseOut:
    return services().courses.update_course(course_id, current_viewer(), body)


@bp.get("/<id:course_id>/lessons")
@endpoint("A course's lessons, in order", tag="courses", auth="access", response=LessonList)
def list_lessons(course_id: int) -> LessonList:
    return LessonList(items=services().courses.list_lessons(course_id, current_viewer()))


@bp.post("/<id:course_id>/lessons")
@endpoint(
    "Add a lesson: JSON text, or a multipart upload",
    tag="courses",
    auth="instructor",
    status=201,
    body=LessonJson,
    upload=LessonUpload,
    response=LessonOut,
    errors=(409,),
    description="JSON `{title, position?, text}`, or `multipart/form-data` with `title`, "
    "`position?` and a `file` (PDF, SRT, WebVTT, HTML, Markdown or text; up to "
    "UPLOAD_MAX_BYTES, 64 MiB by default). The file is stored under its SHA-256; its text is "
    "extracted when the course is published.",
)
def add_lesson(
    course_id: int, body: LessonJson | None = None, upload: Upload | None = None
) -> LessonOut:
    if upload is not None:
        stored = store_upload(upload.file, Path(current_app.config["UPLOADS_PATH"]))
        lesson = LessonCreate(**upload.fields.model_dump(exclude_unset=True), file=stored)
    else:
        assert body is not None  # the declaration gives one or the other
        lesson = LessonCreate(**body.model_dump(exclude_unset=True))
    return services().courses.add_lesson(course_id, current_viewer(), lesson)


@bp.post("/<id:course_id>/publish")
@endpoint(
    "Publish: extract, chunk, embed and index the content (a job)",
    tag="courses",
    auth="instructor",
    status=202,
    response=JobOut,
    errors=(409,),
    description="Answers at once with the job; follow it at `GET /api/jobs/{job_id}` "
    "(the `Location` header). The course is published when every step is done.",
)
def publish(course_id: int) -> Response:
    job = services().courses.publish(course_id, current_viewer())
    return created(job, "learning.get_job", status=202, job_id=job.id)


@bp.post("/<id:course_id>/enroll")
@endpoint(
    "Enrol in a published course",
    tag="courses",
    auth="access",
    status=201,
    response=EnrollmentOut,
    errors=(409,),
)
def enroll(course_id: int) -> EnrollmentOut:
    return services().courses.enroll(course_id, current_user_id())


@bp.get("/<id:course_id>/progress")
@endpoint(
    "The caller's progress in a course (cached)",
    tag="courses",
    auth="access",
    response=ProgressOut,
    cached=True,
)
def progress(course_id: int) -> Response:
    user_id = current_user_id()
    answer, hit = response_cache().cached(
        PROGRESS,
        progress_key(course_id, user_id),
        ProgressOut,
        lambda: services().courses.get_progress(course_id, user_id),
    )
    return cached_json(answer, hit)


@bp.get("/<id:course_id>/search")
@endpoint(
    "Search a course's content (its instructor and enrolled students)",
    tag="courses",
    auth="access",
    query=SearchQuery,
    response=PassageList,
    errors=(403,),
    description="Hybrid search: dense vectors and keywords (BM25), fused by rank.",
)
def search(course_id: int, query: SearchQuery) -> PassageList:
    services().courses.check_access(course_id, current_viewer())
    request = SearchRequest(course_id=course_id, q=query.q, limit=query.limit)
    return PassageList(items=services().content.search(request))
