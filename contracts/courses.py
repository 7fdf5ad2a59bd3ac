"""Courses: lessons, enrolment, progress, publishing jobs, and their events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import Field, StrictInt, StringConstraints, model_validator

from contracts.base import Contract, Event, Id, Line, Patch, Text, UtcDatetime, Viewer

CourseStatus = Literal["draft", "publishing", "published", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
ContentKind = Literal["pdf", "srt", "vtt", "html", "markdown", "text"]

Title = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[Text, StringConstraints(max_length=5000)]
Capacity = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
Position = Annotated[StrictInt, Field(ge=0, le=10_000)]
LESSON_TEXT_MAX = 60_000
LessonText = Annotated[Text, StringConstraints(min_length=1, max_length=LESSON_TEXT_MAX)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
JobId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A publishing job: a UUID in 32 hex digits."""

PUBLISH_ACTOR = "publish_course"
PIPELINE_QUEUE = "content"
"""The Dramatiq actor that runs a publishing job, and its queue."""

PUBLISH_STEPS = ("validate", "extract", "chunk", "embed", "index", "publish")
"""The pipeline's steps, in order; ``JobOut.step_index`` counts them from 1."""


class CourseCreate(Contract):
    title: Title
    description: Description = ""
    capacity: Capacity | None = Field(None, description="Most students; none means unlimited.")


class CoursePatch(Patch):
    """A partial update: at least one field."""

    title: Title | None = None
    description: Description | None = None
    capacity: Capacity | None = None


class CourseOut(Contract):
    id: int
    instructor_id: int
    title: str
    description: str
    capacity: int | None
    enrolled: int
    status: CourseStatus
    lessons: int
    published_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class CourseQuery(Contract):
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 20
    offset: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0


class RecentJobsQuery(Contract):
    """``?limit=1..50``: how many of the newest publishing jobs."""

    limit: Annotated[StrictInt, Field(ge=1, le=50)] = 20


class CoursePage(Contract):
    items: list[CourseOut]
    total: int
    limit: int
    offset: int


class StoredFile(Contract):
    """An uploaded file, kept content-addressed by the gateway (never under the client's name)."""

    sha256: Sha256
    size: Annotated[StrictInt, Field(ge=1)]
    kind: ContentKind
    filename: Annotated[Line, StringConstraints(max_length=255)] = ""


class LessonCreate(Contract):
    """A lesson's content is JSON ``text`` or an uploaded ``file``: exactly one."""

    title: Title
    position: Position | None = Field(None, description="Order in the course; default: last.")
    text: LessonText | None = None
    file: StoredFile | None = None

    @model_validator(mode="after")
    def _one_content(self) -> LessonCreate:
        if (self.text is None) == (self.file is None):
            raise ValueError("give the lesson's content as text or as a file, not both")
        return self


class LessonOut(Contract):
    id: int
    course_id: int
    title: str
    position: int
    kind: ContentKind
    size: int = Field(description="Characters of text, or bytes of the file.")
    created_at: UtcDatetime


class JobOut(Contract):
    """A publishing job: where the pipeline is, and how far."""

    id: str
    course_id: int
    status: JobStatus
    step: str
    step_index: int = Field(ge=0, le=len(PUBLISH_STEPS))
    steps_total: int = len(PUBLISH_STEPS)
    percent: int = Field(ge=0, le=100)
    error: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EnrollmentOut(Contract):
    course_id: int
    user_id: int
    enrolled_at: UtcDatetime


class ProgressOut(Contract):
    course_id: int
    user_id: int
    completed: int
    total: int
    percent: int = Field(ge=0, le=100)


class MyCourse(Contract):
    course: CourseOut
    enrolled_at: UtcDatetime


class CoursePublished(Event):
    """Every step of the pipeline is done: the course's content is indexed."""

    type: ClassVar[str] = "course.published"
    source: ClassVar[str] = "courses"

    course_id: int
    instructor_id: int
    job_id: str
    chunks: int


class EnrollmentCreated(Event):
    type: ClassVar[str] = "enrollment.created"
    source: ClassVar[str] = "courses"

    course_id: int
    user_id: int


class ProgressUpdated(Event):
    """A student completed a lesson (once per lesson)."""

    type: ClassVar[str] = "progress.updated"
    source: ClassVar[str] = "courses"

    course_id: int
    user_id: int
    lesson_id: int
    completed: int
    total: int


class CoursesApi(Protocol):
    """The courses service's RPC surface (service name ``courses``).

    A draft course is visible to its instructor and administrators only; to anyone else it
    does not exist (NotFound). Changing a course that is visible but not yours is Forbidden.
    """

    def create_course(self, instructor_id: Id, course: CourseCreate) -> CourseOut: ...

    def update_course(self, course_id: Id, viewer: Viewer, patch: CoursePatch) -> CourseOut: ...

    def list_courses(self, query: CourseQuery) -> CoursePage:
        """Published courses, newest first."""
        ...

    def get_course(self, course_id: Id, viewer: Viewer) -> CourseOut: ...

    def add_lesson(self, course_id: Id, viewer: Viewer, lesson: LessonCreate) -> LessonOut:
        """The instructor adds a lesson (Conflict while the course is publishing)."""
        ...

    def list_lessons(self, course_id: Id, viewer: Viewer) -> list[LessonOut]: ...

    def publish(self, course_id: Id, viewer: Viewer) -> JobOut:
        """Start the publishing pipeline; answers at once with the queued job."""
        ...

    def get_job(self, job_id: JobId, viewer: Viewer) -> JobOut: ...

    def recent_jobs(self, query: RecentJobsQuery, viewer: Viewer) -> list[JobOut]:
        """The newest publishing jobs of every course, newest first: administrators only
        (Forbidden for anyone else)."""
        ...

    def enroll(self, course_id: Id, user_id: Id) -> EnrollmentOut:
        """Conflict when already enrolled, when the course is full, or not published."""
        ...

    def my_courses(self, user_id: Id) -> list[MyCourse]: ...

    def complete_lesson(self, lesson_id: Id, user_id: Id) -> ProgressOut:
        """Mark a lesson done for an enrolled student (idempotent)."""
        ...

    def get_progress(self, course_id: Id, user_id: Id) -> ProgressOut: ...

    def check_access(self, course_id: Id, viewer: Viewer) -> CourseOut:
        """The course if the viewer teaches it, administers, or is enrolled; else
        NotFound (cannot see it) or Forbidden (can see it, not enrolled)."""
        ...
