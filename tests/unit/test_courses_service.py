"""The CoursesService class itself: its entrypoints, its handler and its timer, wired by hand."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from nameko.events import EventHandler
from nameko.timer import Timer
from sqlalchemy import update

from contracts.courses import CoursesApi, EnrollmentCreated
from contracts.errors import InvalidInput
from mesh.events import ReliableEventHandler
from mesh.typed import client
from services.courses import enrollment, jobs
from services.courses.models import PublishJob, utcnow
from services.courses.service import CoursesService
from tests.unit.courses_fakes import TEACHER, add_text, new_course, sqlite_sessions
from tests.unit.fakes import FakeCache, RecordingSink, RecordingTasks
from tests.unit.service_fakes import LocalTransport, wired


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Any]:
    return {
        "context": None,
        "db": sqlite_sessions(tmp_path),
        "events": RecordingSink(),
        "cache": FakeCache(),
        "tasks": RecordingTasks(),
    }


@pytest.fixture
def service(parts) -> CoursesService:
    return wired(CoursesService, **parts)


def entrypoints(name: str) -> list[Any]:
    return list(getattr(getattr(CoursesService, name), "nameko_entrypoints", ()))


def test_every_method_of_the_protocol_is_an_entrypoint() -> None:
    for name, method in vars(CoursesApi).items():
        if inspect.isfunction(method) and not name.startswith("_"):
            assert entrypoints(name), name
    assert CoursesService.name == "courses"


def test_its_typed_client_speaks_json(service, parts) -> None:
    api = client(CoursesApi, "courses", LocalTransport(courses=service))
    course = new_course(parts["db"])
    add_text(parts["db"], course.id)
    job = api.publish(course.id, TEACHER)
    assert api.get_job(job.id, TEACHER) == job
    assert parts["tasks"].sent[0][2] == (job.id,)
    with pytest.raises(InvalidInput):
        api.get_job("not-a-job-id", TEACHER)


def test_it_handles_its_own_enrollment_created_reliably(service, parts) -> None:
    [handler] = entrypoints("on_enrollment_created")
    assert isinstance(handler, ReliableEventHandler) and isinstance(handler, EventHandler)
    assert (handler.source_service, handler.event_type) == ("courses", "enrollment.created")
    parts["cache"].set(enrollment.cache_key(7), "[]")
    course = new_course(parts["db"])
    service.on_enrollment_created(EnrollmentCreated(course_id=course.id, user_id=7).to_wire())
    assert parts["cache"].get(enrollment.cache_key(7)) is None


def test_the_timer_resends_jobs_whose_message_was_lost(service, parts) -> None:
    [timer] = entrypoints("watch_jobs")
    assert isinstance(timer, Timer) and timer.interval <= 30
    course = new_course(parts["db"])
    add_text(parts["db"], course.id)
    job = jobs.publish(parts["db"], RecordingTasks(), course.id, TEACHER)
    with parts["db"]() as session, session.begin():
        session.execute(update(PublishJob).values(enqueued_at=utcnow() - jobs.REQUEUE_AFTER))
    service.watch_jobs()
    assert [args for _, _, args in parts["tasks"].sent] == [(job.id,)]
