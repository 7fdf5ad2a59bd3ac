"""Publishing jobs on SQLite: created by publish, claimed by one message, watched by a timer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from contracts.courses import PIPELINE_QUEUE, PUBLISH_ACTOR, CoursePublished
from contracts.errors import Conflict, Forbidden, NotFound
from services.courses import courses, jobs
from services.courses.models import PublishJob, utcnow
from tests.unit.courses_fakes import (
    ADMIN,
    OTHER_TEACHER,
    RUNNER,
    STUDENT,
    TEACHER,
    add_text,
    job_row,
    new_course,
    published_course,
    sqlite_sessions,
)
from tests.unit.fakes import RecordingSink, RecordingTasks


class FailingTasks(RecordingTasks):
    """A task queue whose broker refuses the next ``failures`` messages."""

    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures

    def send(self, queue_name: str, actor_name: str, *args: Any) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the broker is away")
        return super().send(queue_name, actor_name, *args)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return sqlite_sessions(tmp_path)


@pytest.fixture
def course(sessions):
    course = new_course(sessions)
    add_text(sessions, course.id)
    return course


def age(sessions: sessionmaker, job_id: str, seconds: float) -> None:
    """Make the job look ``seconds`` older."""
    past = utcnow() - timedelta(seconds=seconds)
    with sessions() as session, session.begin():
        session.execute(
            update(PublishJob)
            .where(PublishJob.id == job_id)
            .values(created_at=past, updated_at=past, enqueued_at=past)
        )


def status_of(sessions: sessionmaker, course_id: int) -> str:
    return courses.get_course(sessions, course_id, TEACHER).status


# ---------------------------------------------------------------- publish


def test_publish_queues_a_job_then_enqueues_it(sessions, course) -> None:
    tasks = RecordingTasks()
    job = jobs.publish(sessions, tasks, course.id, TEACHER)
    assert len(job.id) == 32
    assert (job.status, job.step, job.step_index, job.percent) == ("queued", "validate", 0, 0)
    assert (job.course_id, job.steps_total, job.error) == (course.id, 6, None)
    assert tasks.sent == [(PIPELINE_QUEUE, PUBLISH_ACTOR, (job.id,))]
    assert status_of(sessions, course.id) == "publishing"
    row = job_row(sessions, job.id)
    assert (row.enqueues, row.enqueued_at is not None) == (1, True)


def test_publish_needs_a_lesson(sessions) -> None:
    empty = new_course(sessions)
    tasks = RecordingTasks()
    with pytest.raises(Conflict, match="at least one lesson"):
        jobs.publish(sessions, tasks, empty.id, TEACHER)
    assert status_of(sessions, empty.id) == "draft"
    assert tasks.sent == []


def test_publish_twice_is_a_conflict(sessions, course) -> None:
    tasks = RecordingTasks()
    jobs.publish(sessions, tasks, course.id, TEACHER)
    with pytest.raises(Conflict, match="already being published"):
        jobs.publish(sessions, tasks, course.id, ADMIN)
    assert len(tasks.sent) == 1


def test_only_the_instructor_or_an_admin_publishes(sessions, course) -> None:
    with pytest.raises(NotFound):
        jobs.publish(sessions, RecordingTasks(), course.id, OTHER_TEACHER)
    published = published_course(sessions)
    with pytest.raises(Forbidden):
        jobs.publish(sessions, RecordingTasks(), published.id, STUDENT)
    assert jobs.publish(sessions, RecordingTasks(), course.id, ADMIN).status == "queued"


def test_a_failed_enqueue_loses_nothing(sessions, course) -> None:
    tasks = FailingTasks()
    job = jobs.publish(sessions, tasks, course.id, TEACHER)
    assert job.status == "queued" and tasks.sent == []
    assert jobs.requeue_stale(sessions, tasks, utcnow()) == []  # too soon
    age(sessions, job.id, 31)
    assert jobs.requeue_stale(sessions, tasks, utcnow()) == [job.id]
    assert tasks.sent == [(PIPELINE_QUEUE, PUBLISH_ACTOR, (job.id,))]


def test_requeueing_backs_off_and_stops_once_claimed(sessions, course) -> None:
    tasks = RecordingTasks()
    job = jobs.publish(sessions, tasks, course.id, TEACHER)
    age(sessions, job.id, 45)
    now = utcnow()
    assert jobs.requeue_stale(sessions, tasks, now) == [job.id]  # 2 sends now
    later = now + timedelta(seconds=45)
    assert jobs.requeue_stale(sessions, tasks, later) == []  # the second waits 60 s
    assert jobs.requeue_stale(sessions, tasks, now + timedelta(seconds=61)) == [job.id]
    assert jobs.claim(sessions, job.id, RUNNER) is not None
    assert jobs.requeue_stale(sessions, tasks, now + timedelta(hours=1)) == []


def test_get_job_for_the_instructor_and_admins_only(sessions, course) -> None:
    job = jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)
    assert jobs.get_job(sessions, job.id, TEACHER) == job
    assert jobs.get_job(sessions, job.id, ADMIN).id == job.id
    for stranger in (STUDENT, OTHER_TEACHER):
        with pytest.raises(NotFound):
            jobs.get_job(sessions, job.id, stranger)
    with pytest.raises(NotFound):
        jobs.get_job(sessions, "f" * 32, ADMIN)


# ---------------------------------------------------------------- the pipeline's side


@pytest.fixture
def job(sessions, course):
    return jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)


def test_one_message_claims_a_job_and_may_claim_it_again(sessions, job) -> None:
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None and (claim.course_id, claim.chunks) == (job.course_id, None)
    assert jobs.claim(sessions, job.id, "a-duplicate-message") is None
    assert jobs.claim(sessions, job.id, RUNNER) is not None  # redelivered after a crash
    row = job_row(sessions, job.id)
    assert (row.status, row.runner, row.attempts) == ("running", RUNNER, 2)
    assert jobs.claim(sessions, "0" * 32, RUNNER) is None


def test_steps_count_from_one_and_percent_never_goes_back(sessions, job) -> None:
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    jobs.enter(sessions, claim, "embed")
    jobs.advance(sessions, claim, "embed", 1, 2)
    out = jobs.get_job(sessions, job.id, TEACHER)
    assert (out.step, out.step_index, out.percent) == ("embed", 4, 50)
    jobs.enter(sessions, claim, "extract")  # a resumed run goes through earlier steps again
    jobs.advance(sessions, claim, "extract", 1, 1)
    out = jobs.get_job(sessions, job.id, TEACHER)
    assert (out.step, out.step_index, out.percent) == ("extract", 2, 50)


def test_success_publishes_the_course_with_its_event_once(sessions, job) -> None:
    sink = RecordingSink()
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    jobs.succeed(sessions, sink, claim, chunks=7)
    out = jobs.get_job(sessions, job.id, TEACHER)
    assert (out.status, out.step, out.step_index, out.percent) == ("succeeded", "publish", 6, 100)
    course = courses.get_course(sessions, job.course_id, STUDENT)
    assert course.status == "published" and course.published_at is not None
    [event] = sink.events
    assert isinstance(event, CoursePublished)
    assert (event.course_id, event.instructor_id, event.job_id, event.chunks) == (
        job.course_id,
        TEACHER.user_id,
        job.id,
        7,
    )
    with pytest.raises(jobs.JobAbandoned):
        jobs.succeed(sessions, sink, claim, chunks=7)
    assert len(sink.events) == 1
    assert jobs.claim(sessions, job.id, RUNNER) is None  # finished: nothing to run


def test_failure_fails_the_course_which_can_be_published_again(sessions, job) -> None:
    assert jobs.fail(sessions, job.id, "lesson 'x': corrupt PDF")
    out = jobs.get_job(sessions, job.id, TEACHER)
    assert (out.status, out.error) == ("failed", "lesson 'x': corrupt PDF")
    assert status_of(sessions, job.course_id) == "failed"
    assert not jobs.fail(sessions, job.id, "again")  # only once
    add_text(sessions, job.course_id, "More.")  # a failed course takes lessons again
    again = jobs.publish(sessions, RecordingTasks(), job.course_id, TEACHER)
    assert again.id != job.id and status_of(sessions, job.course_id) == "publishing"


def test_a_failed_job_cannot_be_moved_on(sessions, job) -> None:
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    jobs.fail(sessions, job.id, "stop")
    with pytest.raises(jobs.JobAbandoned):
        jobs.enter(sessions, claim, "extract")


def test_a_republish_keeps_the_first_publication_date(sessions) -> None:
    course = published_course(sessions)
    add_text(sessions, course.id, "Another lesson.")
    job = jobs.publish(sessions, RecordingTasks(), course.id, TEACHER)
    assert courses.get_course(sessions, course.id, STUDENT).status == "publishing"  # visible
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    jobs.succeed(sessions, RecordingSink(), claim, chunks=3)
    again = courses.get_course(sessions, course.id, STUDENT)
    assert (again.status, again.published_at) == ("published", course.published_at)


def test_stalled_jobs_fail(sessions, job) -> None:
    claim = jobs.claim(sessions, job.id, RUNNER)
    assert claim is not None
    assert jobs.fail_stalled(sessions, utcnow()) == []
    age(sessions, job.id, jobs.STALL_AFTER.total_seconds() + 1)
    assert jobs.fail_stalled(sessions, utcnow()) == [job.id]
    assert jobs.get_job(sessions, job.id, TEACHER).error == jobs.STALLED
    assert status_of(sessions, job.course_id) == "failed"


def test_a_runner_fails_only_its_own_job(sessions, job) -> None:
    assert jobs.claim(sessions, job.id, RUNNER) is not None
    assert not jobs.fail(sessions, job.id, "not mine", runner="message-2")
    assert jobs.fail(sessions, job.id, "mine", runner=RUNNER)
    assert jobs.get_job(sessions, job.id, TEACHER).error == "mine"
