"""The learning half through the gateway: courses, uploads, publishing on the workers,
enrolment, progress, search, the assistant and the reports, on the whole running mesh."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from fpdf import FPDF

from tests.e2e.conftest import PASSWORD, Mesh

pytestmark = pytest.mark.e2e

DECORATORS = (
    "A decorator wraps a function to add behaviour before and after each call. Inside it, "
    "define a wrapper that takes *args and **kwargs, runs code around the original call and "
    "returns its result. Use functools.wraps so the wrapper keeps the original's name."
)
BREAD = "# Bread\n\nKnead the dough for ten minutes, then let it rise in a warm place.\n"
SUBTITLES = (
    "1\n00:00:01,000 --> 00:00:04,000\nGenerators yield values one at a time.\n\n"
    "2\n00:00:05,000 --> 00:00:09,000\nThey keep their state between calls.\n"
)


def account(mesh: Mesh, role: str = "student") -> dict[str, str]:
    """A new user of ``role``: the auth header of a fresh login."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": role.title(), "role": role}
    registered = requests.post(mesh.url("/api/auth/register"), json=body, timeout=15)
    assert registered.status_code == 201, registered.text
    login = requests.post(
        mesh.url("/api/auth/login"), json={"email": email, "password": PASSWORD}, timeout=15
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def pdf_bytes(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in range(pages):
        pdf.add_page()
        pdf.multi_cell(
            0, 6, f"Page {page + 1}. Iterators implement __next__ and raise StopIteration. " * 12
        )
    return bytes(pdf.output())


def new_course(mesh: Mesh, teacher: dict[str, str], capacity: int | None = None) -> int:
    body: dict[str, Any] = {"title": f"Python {uuid.uuid4().hex[:6]}", "description": "e2e"}
    if capacity is not None:
        body["capacity"] = capacity
    made = requests.post(mesh.url("/api/courses"), json=body, headers=teacher, timeout=15)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def add_lesson(mesh: Mesh, teacher: dict[str, str], course: int, **upload: Any) -> dict[str, Any]:
    url = mesh.url(f"/api/courses/{course}/lessons")
    if "text" in upload:
        answer = requests.post(url, json=upload, headers=teacher, timeout=30)
    else:
        name, data = upload.pop("file")
        answer = requests.post(
            url, data=upload, files={"file": (name, io.BytesIO(data))}, headers=teacher, timeout=60
        )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def publish(mesh: Mesh, teacher: dict[str, str], course: int) -> Iterator[dict[str, Any]]:
    """Publish, then yield the job as it moves until it ends."""
    started = requests.post(mesh.url(f"/api/courses/{course}/publish"), headers=teacher, timeout=15)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = requests.get(mesh.url(location), headers=teacher, timeout=15).json()
        yield job
        if job["status"] in ("succeeded", "failed"):
            return
        time.sleep(0.1)
    pytest.fail(f"the publishing job did not end within 180 s: {job}")


@pytest.fixture(scope="module")
def teacher(mesh: Mesh) -> dict[str, str]:
    return account(mesh, "instructor")


@pytest.fixture(scope="module")
def course(mesh: Mesh, teacher: dict[str, str]) -> int:
    """A published course of four lessons: JSON text, a PDF, Markdown and subtitles."""
    course_id = new_course(mesh, teacher, capacity=50)
    add_lesson(mesh, teacher, course_id, title="Decorators", text=DECORATORS)
    add_lesson(mesh, teacher, course_id, title="Iterators", file=("iter.pdf", pdf_bytes(3)))
    add_lesson(mesh, teacher, course_id, title="Bread", file=("bread.md", BREAD.encode()))
    add_lesson(mesh, teacher, course_id, title="Generators", file=("gen.srt", SUBTITLES.encode()))
    jobs = list(publish(mesh, teacher, course_id))
    assert jobs[-1]["status"] == "succeeded", jobs[-1]
    return course_id


def test_only_instructors_write_courses(mesh: Mesh) -> None:
    student = account(mesh)
    refused = requests.post(
        mesh.url("/api/courses"), json={"title": "X"}, headers=student, timeout=15
    )
    assert refused.status_code == 403


def test_a_bad_upload_is_refused_with_a_clear_status(mesh: Mesh, teacher: dict[str, str]) -> None:
    course_id = new_course(mesh, teacher)
    url = mesh.url(f"/api/courses/{course_id}/lessons")

    def upload(name: str, data: bytes) -> requests.Response:
        files = {"file": (name, io.BytesIO(data))}
        return requests.post(url, data={"title": "L"}, files=files, headers=teacher, timeout=30)

    assert upload("image.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64).status_code == 415
    assert upload("broken.pdf", b"%PDF-1.7\n garbage, no xref").status_code == 422
    lessons = requests.get(url, headers=teacher, timeout=15).json()["items"]
    assert lessons == []  # nothing half-written


def test_publishing_runs_on_the_workers_and_moves_to_100(
    mesh: Mesh, teacher: dict[str, str]
) -> None:
    course_id = new_course(mesh, teacher)
    add_lesson(mesh, teacher, course_id, title="Manual", file=("manual.pdf", pdf_bytes(80)))
    seen = list(publish(mesh, teacher, course_id))
    percents = [job["percent"] for job in seen]
    assert percents == sorted(percents) and percents[-1] == 100
    assert seen[-1]["status"] == "succeeded" and seen[-1]["step_index"] == 6
    assert len({job["percent"] for job in seen if job["step"] == "embed"}) >= 2  # it moved
    published = requests.get(mesh.url(f"/api/courses/{course_id}"), headers=teacher, timeout=15)
    assert published.json()["status"] == "published"


def test_search_finds_the_passage_and_only_for_its_students(
    mesh: Mesh, course: int, teacher: dict[str, str]
) -> None:
    student, stranger = account(mesh), account(mesh)
    url = mesh.url(f"/api/courses/{course}/search")
    params = {"q": "how do I wrap a function to add behaviour", "limit": 3}
    assert requests.get(url, params=params, headers=stranger, timeout=15).status_code == 403
    enrolled = requests.post(mesh.url(f"/api/courses/{course}/enroll"), headers=student, timeout=15)
    assert enrolled.status_code == 201
    found = requests.get(url, params=params, headers=student, timeout=15).json()["items"]
    assert "decorator" in found[0]["text"].lower()
    exact = requests.get(url, params={"q": "StopIteration"}, headers=teacher, timeout=15).json()
    assert any("StopIteration" in passage["text"] for passage in exact["items"][:3])


def test_enrolment_never_exceeds_capacity(mesh: Mesh, teacher: dict[str, str]) -> None:
    course_id = new_course(mesh, teacher, capacity=3)
    add_lesson(mesh, teacher, course_id, title="One", text=DECORATORS)
    assert list(publish(mesh, teacher, course_id))[-1]["status"] == "succeeded"
    students = [account(mesh) for _ in range(10)]
    url = mesh.url(f"/api/courses/{course_id}/enroll")
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(lambda h: requests.post(url, headers=h, timeout=30).status_code, students)
        )
    assert sorted(statuses) == [201] * 3 + [409] * 7
    course = requests.get(mesh.url(f"/api/courses/{course_id}"), headers=teacher, timeout=15)
    assert course.json()["enrolled"] == 3


def test_progress_is_cached_and_moves_with_completed_lessons(
    mesh: Mesh, course: int, teacher: dict[str, str]
) -> None:
    student = account(mesh)
    requests.post(mesh.url(f"/api/courses/{course}/enroll"), headers=student, timeout=15)
    lessons = requests.get(mesh.url(f"/api/courses/{course}/lessons"), headers=student, timeout=15)
    first = lessons.json()["items"][0]["id"]
    done = requests.post(mesh.url(f"/api/lessons/{first}/complete"), headers=student, timeout=15)
    assert (done.json()["completed"], done.json()["total"], done.json()["percent"]) == (1, 4, 25)
    url = mesh.url(f"/api/courses/{course}/progress")

    def cached() -> bool:
        answer = requests.get(url, headers=student, timeout=15)
        return answer.headers["X-Cache"] == "HIT" and answer.json()["completed"] == 1

    mesh.eventually(cached, 15, what="a cached progress of 1 lesson")
    mine = requests.get(mesh.url("/api/me/courses"), headers=student, timeout=15).json()
    assert [item["course"]["id"] for item in mine["items"]] == [course]


def sse_events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) of every Server-Sent Event of a finished stream."""
    events, name, data = [], "message", []
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif raw.startswith("event:"):
            name = raw[6:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].strip())
    return events


def test_the_assistant_answers_from_the_course_as_json_and_as_sse(mesh: Mesh, course: int) -> None:
    student = account(mesh)
    requests.post(mesh.url(f"/api/courses/{course}/enroll"), headers=student, timeout=15)
    url = mesh.url("/api/assistant/ask")
    question = {"course_id": course, "question": "How do I wrap a function to add behaviour?"}
    answer = requests.post(url, json=question, headers=student, timeout=60).json()
    assert answer["found"] and answer["mode"] == "extractive"
    assert "decorator" in answer["sources"][0]["text"].lower()

    follow_up = {**question, "conversation_id": answer["conversation_id"], "question": "And why?"}
    streamed = requests.post(
        url,
        json=follow_up,
        headers={**student, "Accept": "text/event-stream"},
        timeout=60,
        stream=True,
    )
    events = sse_events(streamed)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    assert events[-1][1]["conversation_id"] == answer["conversation_id"]

    off_topic = {"course_id": course, "question": "Who won the 1966 football world cup?"}
    missing = requests.post(url, json=off_topic, headers=student, timeout=60).json()
    assert not missing["found"] and "not found" in missing["answer"].lower()

    conversation = requests.get(
        mesh.url(f"/api/assistant/conversations/{answer['conversation_id']}"),
        headers=student,
        timeout=15,
    )
    assert len(conversation.json()["turns"]) == 2
    stranger = requests.get(
        mesh.url(f"/api/assistant/conversations/{answer['conversation_id']}"),
        headers=account(mesh),
        timeout=15,
    )
    assert stranger.status_code == 404


def test_reports_count_what_happened(mesh: Mesh, course: int) -> None:
    admin = {"Authorization": f"Bearer {mesh.admin_token()}"}
    today = datetime.now(UTC).date().isoformat()
    params = {"from": today, "to": today, "course_id": course}
    url = mesh.url("/api/reports/enrollments")

    def counted() -> list[dict[str, Any]] | None:
        rows = requests.get(url, params=params, headers=admin, timeout=15).json()["items"]
        enrolled = requests.get(mesh.url(f"/api/courses/{course}"), headers=admin, timeout=15)
        total = enrolled.json()["enrolled"]
        return rows if rows and rows[0]["enrollments"] == total else None

    rows = mesh.eventually(counted, 30, what="the enrolments report to catch up")
    as_csv = requests.get(url, params=params, headers={**admin, "Accept": "text/csv"}, timeout=15)
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    header, line = as_csv.text.strip().splitlines()[:2]
    assert header.startswith("day,course_id") and line.startswith(f"{today},{course},")
    assert rows[0]["course_id"] == course
    student = account(mesh)
    assert requests.get(url, params=params, headers=student, timeout=15).status_code == 403


def kill_workers(mesh: Mesh) -> None:
    """SIGKILL the Dramatiq main process and its worker processes, as a crash would."""
    main = mesh.supervisorctl("pid", "workers").stdout.strip()
    assert main.isdigit(), main
    mesh.run("pkill", "-KILL", "-P", main)
    mesh.run("kill", "-KILL", main)


def test_a_worker_killed_while_embedding_resumes_without_duplicates(
    mesh: Mesh, teacher: dict[str, str]
) -> None:
    from pymongo import MongoClient

    from contracts.content import ContentApi
    from mesh.rpc import standalone_client
    from mesh.settings import Settings

    course_id = new_course(mesh, teacher)
    add_lesson(mesh, teacher, course_id, title="Manual", file=("manual.pdf", pdf_bytes(40)))
    killed, job = False, {}
    for job in publish(mesh, teacher, course_id):
        if not killed and job["step"] == "embed" and job["percent"] >= 30:
            kill_workers(mesh)
            killed = True
    assert killed, "the job ended before it could be interrupted"
    assert job["status"] == "succeeded", job
    mongo = MongoClient(mesh.mongo_uri)
    try:
        chunks = len(list(mongo[mesh.mongo_db]["course_chunks"].find({"version": job["id"]})))
    finally:
        mongo.close()
    settings = Settings(amqp_uri=mesh.env["AMQP_URI"])
    with standalone_client(ContentApi, "content", settings) as content:
        assert content.count(course_id) == chunks > 0
