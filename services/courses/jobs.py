"""Publishing jobs: created by ``publish``, run by the pipeline, watched by a timer.

A job goes queued -> running -> succeeded | failed. The Dramatiq message that claims a
queued job becomes its ``runner``: only that message (redelivered after a crash, or retried)
may move it on, so a duplicate message (the timer re-enqueues jobs still queued) is a no-op.
Its percent never goes back, and each step owns a range of it (``STEP_RANGES``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Viewer
from contracts.courses import (
    PIPELINE_QUEUE,
    PUBLISH_ACTOR,
    PUBLISH_STEPS,
    CoursePublished,
    JobOut,
    RecentJobsQuery,
)
from contracts.errors import Conflict, Forbidden, NotFound
from mesh.outbox import EventSink
from mesh.sql import affected
from services.courses import access
from services.courses.models import Course, PublishJob, as_utc, utcnow

log = logging.getLogger(__name__)

JOB_NOT_FOUND = "job not found"
ADMINS_ONLY = "administrators only"
ERROR_MAX = 2000
STEP_RANGES: dict[str, tuple[int, int]] = {
    "validate": (0, 2),
    "extract": (2, 15),
    "chunk": (15, 20),
    "embed": (20, 80),
    "index": (80, 97),
    "publish": (97, 100),
}
"""The percent each step starts and ends at; embedding takes most of the time."""
REQUEUE_AFTER = timedelta(seconds=30)
REQUEUE_MAX = timedelta(minutes=15)
STALL_AFTER = timedelta(hours=1)
STALLED = "the job stalled: no progress for an hour"


class Tasks(Protocol):
    def send(self, queue_name: str, actor_name: str, *args: Any) -> str: ...


class PublishError(Exception):
    """Publishing cannot succeed as things are: the job fails at once, with this message."""


class JobAbandoned(Exception):
    """The job is no longer this runner's to move on (finished, or failed by the timer)."""


@dataclass(frozen=True)
class Claim:
    """What a runner knows of the job it claimed."""

    job_id: str
    course_id: int
    runner: str
    chunks: int | None


def job_out(job: PublishJob) -> JobOut:
    return JobOut.model_validate(
        {
            "id": job.id,
            "course_id": job.course_id,
            "status": job.status,
            "step": job.step,
            "step_index": job.step_index,
            "percent": job.percent,
            "error": job.error,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
    )


# ---------------------------------------------------------------- the service's side


def _start_publishing(session: Session, course_id: int) -> None:
    """Move the course to publishing, unless it is already (Conflict), and check its lessons."""
    started = affected(
        session,
        update(Course)
        .where(Course.id == course_id, Course.status != "publishing")
        .values(status="publishing", updated_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if started != 1:
        raise Conflict("the course is already being published")
    lessons = session.scalar(select(Course.lesson_count).where(Course.id == course_id))
    if not lessons:
        raise Conflict("add at least one lesson before publishing the course")


def publish(sessions: sessionmaker, tasks: Tasks, course_id: int, viewer: Viewer) -> JobOut:
    """Create a queued job and mark the course publishing (one commit), then enqueue it.

    If the enqueue fails, the job is still stored and queued: ``requeue_stale`` sends it.
    """
    with sessions() as session, session.begin():
        course = access.owned(session, course_id, viewer)
        _start_publishing(session, course.id)
        now = utcnow()
        job = PublishJob(
            id=uuid.uuid4().hex,
            course_id=course.id,
            status="queued",
            step=PUBLISH_STEPS[0],
            step_index=0,
            percent=0,
            attempts=0,
            enqueues=0,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
    enqueue(sessions, tasks, job.id)
    log.info("publishing job queued", extra={"job_id": job.id, "course_id": course.id})
    return job_out(job)


def enqueue(sessions: sessionmaker, tasks: Tasks, job_id: str) -> bool:
    """Send the job's Dramatiq message (confirmed); False, logged, if that failed."""
    try:
        tasks.send(PIPELINE_QUEUE, PUBLISH_ACTOR, job_id)
    except Exception:
        log.exception("publishing job not enqueued: the timer will", extra={"job_id": job_id})
        return False
    try:
        with sessions() as session, session.begin():
            session.execute(
                update(PublishJob)
                .where(PublishJob.id == job_id)
                .values(enqueued_at=utcnow(), enqueues=PublishJob.enqueues + 1)
                .execution_options(synchronize_session=False)
            )
    except Exception:  # the timer will send it again: a harmless duplicate
        log.exception("publishing job enqueued, but not marked", extra={"job_id": job_id})
    return True


def get_job(sessions: sessionmaker, job_id: str, viewer: Viewer) -> JobOut:
    """The job, for its course's instructor or an administrator; NotFound for anyone else."""
    with sessions() as session:
        job = session.get(PublishJob, job_id)
        course = session.get(Course, job.course_id) if job is not None else None
        if job is None or course is None or not access.teaches(course, viewer):
            raise NotFound(JOB_NOT_FOUND)
        return job_out(job)


def recent_jobs(sessions: sessionmaker, query: RecentJobsQuery, viewer: Viewer) -> list[JobOut]:
    """The newest jobs of every course (by creation), for administrators; Forbidden otherwise.

    Jobs created within one tick of the database's clock (a second on MariaDB) come in no set
    order: the id is random, so it only makes the order stable.
    """
    if not viewer.is_admin:
        raise Forbidden(ADMINS_ONLY)
    with sessions() as session:
        found = session.scalars(
            select(PublishJob)
            .order_by(PublishJob.created_at.desc(), PublishJob.id.desc())
            .limit(query.limit)
        ).all()
        return [job_out(job) for job in found]


def _requeue_due(job: PublishJob, now: datetime) -> bool:
    """Sent at least ``REQUEUE_AFTER`` ago, doubling with each send (at most REQUEUE_MAX)."""
    last = as_utc(job.enqueued_at or job.created_at)
    wait = min(REQUEUE_AFTER * 2 ** max(job.enqueues - 1, 0), REQUEUE_MAX)
    return now - last >= wait


def requeue_stale(
    sessions: sessionmaker, tasks: Tasks, now: datetime, limit: int = 100
) -> list[str]:
    """Send again the jobs still queued: their message may never have reached the broker.

    A duplicate message is harmless: the first to claim the job runs it, the other skips.
    """
    cutoff = now - REQUEUE_AFTER
    with sessions() as session:
        jobs = session.scalars(
            select(PublishJob)
            .where(
                PublishJob.status == "queued",
                or_(
                    PublishJob.enqueued_at < cutoff,
                    and_(PublishJob.enqueued_at.is_(None), PublishJob.created_at < cutoff),
                ),
            )
            .order_by(PublishJob.created_at)
            .limit(limit)
        ).all()
    due = [job.id for job in jobs if _requeue_due(job, now)]
    return [job_id for job_id in due if enqueue(sessions, tasks, job_id)]


def fail_stalled(sessions: sessionmaker, now: datetime) -> list[str]:
    """Fail running jobs that have not moved for ``STALL_AFTER`` (their message is gone)."""
    cutoff = now - STALL_AFTER
    with sessions() as session:
        stalled = session.scalars(
            select(PublishJob.id).where(
                PublishJob.status == "running", PublishJob.updated_at < cutoff
            )
        ).all()
    return [job_id for job_id in stalled if fail(sessions, job_id, STALLED, stale_before=cutoff)]


# ---------------------------------------------------------------- the pipeline's side


def claim(sessions: sessionmaker, job_id: str, runner: str) -> Claim | None:
    """Make ``runner`` (a message id) run the job: a queued job, or one it already runs.

    None when there is nothing to run: an unknown or finished job, or one another message
    runs (a duplicate message).
    """
    with sessions() as session, session.begin():
        claimed = affected(
            session,
            update(PublishJob)
            .where(
                PublishJob.id == job_id,
                or_(
                    PublishJob.status == "queued",
                    and_(PublishJob.status == "running", PublishJob.runner == runner),
                ),
            )
            .values(
                status="running",
                runner=runner,
                attempts=PublishJob.attempts + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False),
        )
        job = session.get(PublishJob, job_id)
    if job is None:
        log.warning("no such publishing job", extra={"job_id": job_id})
        return None
    if claimed != 1:
        log.info(
            "publishing job not claimed",
            extra={"job_id": job_id, "status": job.status, "runner": job.runner},
        )
        return None
    return Claim(job_id=job.id, course_id=job.course_id, runner=runner, chunks=job.chunks)


def _moved(session: Session, job_id: str, runner: str, **values: Any) -> None:
    """Update the job if ``runner`` still runs it; JobAbandoned otherwise."""
    moved = affected(
        session,
        update(PublishJob)
        .where(
            PublishJob.id == job_id,
            PublishJob.status == "running",
            PublishJob.runner == runner,
        )
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if moved != 1:
        raise JobAbandoned(f"job {job_id} is no longer run by {runner}")


def _at_least(percent: int) -> Any:
    """The job's percent, raised to ``percent`` but never lowered."""
    return case((PublishJob.percent < percent, percent), else_=PublishJob.percent)


def enter(sessions: sessionmaker, claim: Claim, step: str) -> None:
    """The job is at ``step`` (1-based ``step_index``), at least at the step's first percent."""
    with sessions() as session, session.begin():
        _moved(
            session,
            claim.job_id,
            claim.runner,
            step=step,
            step_index=PUBLISH_STEPS.index(step) + 1,
            percent=_at_least(STEP_RANGES[step][0]),
        )


def advance(sessions: sessionmaker, claim: Claim, step: str, done: int, total: int) -> None:
    """``done`` of ``total`` units of ``step`` are done: the percent moves within its range."""
    low, high = STEP_RANGES[step]
    percent = low + (high - low) * min(done, total) // max(total, 1)
    with sessions() as session, session.begin():
        _moved(session, claim.job_id, claim.runner, percent=_at_least(percent))


def chunked(sessions: sessionmaker, claim: Claim, chunks: int) -> Claim:
    """Record that the chunks are stored: a resumed run skips extract and chunk."""
    with sessions() as session, session.begin():
        _moved(session, claim.job_id, claim.runner, chunks=chunks)
    return Claim(job_id=claim.job_id, course_id=claim.course_id, runner=claim.runner, chunks=chunks)


def note_error(sessions: sessionmaker, job_id: str, runner: str, error: str) -> None:
    """Keep the error of an attempt that will be retried (the job stays running)."""
    with sessions() as session, session.begin():
        _moved(session, job_id, runner, error=error[:ERROR_MAX])


def succeed(sessions: sessionmaker, events: EventSink, claim: Claim, chunks: int) -> None:
    """The job succeeded and the course is published, with ``course.published``: one commit."""
    with sessions() as session, session.begin():
        now = utcnow()
        step = PUBLISH_STEPS[-1]
        _moved(
            session,
            claim.job_id,
            claim.runner,
            status="succeeded",
            step=step,
            step_index=len(PUBLISH_STEPS),
            percent=100,
            error=None,
            finished_at=now,
        )
        published = affected(
            session,
            update(Course)
            .where(Course.id == claim.course_id, Course.status == "publishing")
            .values(
                status="published",
                published_at=func.coalesce(Course.published_at, now),  # the first time
                updated_at=now,
            )
            .execution_options(synchronize_session=False),
        )
        if published != 1:
            raise PublishError("the course is no longer being published")
        course = access.find(session, claim.course_id)
        event = CoursePublished(
            course_id=course.id,
            instructor_id=course.instructor_id,
            job_id=claim.job_id,
            chunks=chunks,
        )
        events.add(session, event)
    log.info("course published", extra={"course_id": claim.course_id, "job_id": claim.job_id})


def fail(
    sessions: sessionmaker,
    job_id: str,
    error: str,
    *,
    runner: str | None = None,
    stale_before: datetime | None = None,
) -> bool:
    """End an unfinished job ``failed`` with ``error``, and its course too; True if it did.

    Given a ``runner``, only a job still queued or run by that runner (not by another message).
    """
    with sessions() as session, session.begin():
        now = utcnow()
        statement = update(PublishJob).where(
            PublishJob.id == job_id, PublishJob.status.in_(("queued", "running"))
        )
        if runner is not None:
            statement = statement.where(
                or_(PublishJob.status == "queued", PublishJob.runner == runner)
            )
        if stale_before is not None:
            statement = statement.where(PublishJob.updated_at < stale_before)
        failed = affected(
            session,
            statement.values(
                status="failed", error=error[:ERROR_MAX], finished_at=now, updated_at=now
            ).execution_options(synchronize_session=False),
        )
        if failed != 1:
            return False
        course_id = session.scalar(select(PublishJob.course_id).where(PublishJob.id == job_id))
        session.execute(
            update(Course)
            .where(Course.id == course_id, Course.status == "publishing")
            .values(status="failed", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    log.warning("publishing job failed", extra={"job_id": job_id, "error": error})
    return True
