"""/api/courses, /api/me/courses, /api/lessons/{id}/complete, /api/jobs/{id}: instructors
write and publish courses (lessons as JSON text or uploaded files), students enrol, follow
their progress (cached) and search what they are enrolled in."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest
from flask_jwt_extended import decode_token
from fpdf import FPDF

from tests.unit.gateway_helpers import assert_error, bearer

COURSES = "/api/courses"
INSTRUCTORS_ONLY = "instructors only (register with role 'instructor')"
MARKDOWN = b"# Decorators\n\nA decorator wraps a function and returns another one.\n"
SRT = b"1\n00:00:01,000 --> 00:00:04,000\nWelcome to the course.\n\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def make_pdf(text: str = "Decorators wrap functions.") -> bytes:
    """A real, small one-page PDF."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


# ----------------------------------------------------------------- who


@pytest.fixture
def teacher(login) -> dict[str, str]:
    return bearer(login("tess@example.com", role="instructor")["access_token"])  # user 1


@pytest.fixture
def student(login, teacher) -> dict[str, str]:
    return bearer(login("sam@example.com")["access_token"])  # user 2


@pytest.fixture
def other(login, student) -> dict[str, str]:
    return bearer(login("olga@example.com")["access_token"])  # user 3


@pytest.fixture
def admin(login, other) -> dict[str, str]:
    return bearer(login("root@example.com", admin=True)["access_token"])  # user 4


@pytest.fixture
def draft(client, teacher) -> dict:
    """Tess's draft course, with one text lesson (course 1, lesson 1)."""
    response = client.post(COURSES, json={"title": "Python", "capacity": 2}, headers=teacher)
    assert response.status_code == 201, response.get_json()
    course = response.get_json()
    lesson = {"title": "Decorators", "text": "Decorators wrap functions."}
    added = client.post(f"{COURSES}/{course['id']}/lessons", json=lesson, headers=teacher)
    assert added.status_code == 201, added.get_json()
    return course


@pytest.fixture
def published(client, teacher, draft, fake_courses) -> dict:
    """The draft, published (its job run by the fake pipeline)."""
    job = client.post(f"{COURSES}/{draft['id']}/publish", headers=teacher).get_json()
    fake_courses.run_job(job["id"])
    return client.get(f"{COURSES}/{draft['id']}", headers=teacher).get_json()


# ----------------------------------------------------------------- instructors only


def test_a_student_cannot_write_courses(client, student, published, fake_courses):
    course_id = published["id"]
    attempts = [
        client.post(COURSES, json={"title": "Mine"}, headers=student),
        client.patch(f"{COURSES}/{course_id}", json={"title": "Mine"}, headers=student),
        client.post(
            f"{COURSES}/{course_id}/lessons", json={"title": "x", "text": "y"}, headers=student
        ),
        client.post(f"{COURSES}/{course_id}/publish", headers=student),
    ]
    for response in attempts:
        assert assert_error(response, 403, "forbidden")["message"] == INSTRUCTORS_ONLY
    assert len(fake_courses.courses) == 1 and len(fake_courses.lessons) == 1
    assert len(fake_courses.jobs) == 1


def test_the_role_travels_in_the_access_token(app, login):
    tokens = {
        "student": login("sam@example.com")["access_token"],
        "instructor": login("tess@example.com", role="instructor")["access_token"],
    }
    with app.app_context():
        assert {role: decode_token(token)["rol"] for role, token in tokens.items()} == {
            "student": "student",
            "instructor": "instructor",
        }


def test_an_instructor_creates_a_draft(client, teacher, fake_courses):
    body = {"title": "  Python  ", "description": "From zero", "capacity": 30}
    response = client.post(COURSES, json=body, headers=teacher)
    assert response.status_code == 201
    course = response.get_json()
    assert response.headers["Location"] == f"/api/courses/{course['id']}"
    assert (course["title"], course["instructor_id"], course["status"]) == ("Python", 1, "draft")
    assert (course["enrolled"], course["lessons"], course["capacity"]) == (0, 0, 30)
    assert fake_courses.courses[course["id"]].description == "From zero"


def test_an_admin_may_write_any_course(client, admin, draft):
    response = client.patch(f"{COURSES}/{draft['id']}", json={"title": "Python 3"}, headers=admin)
    assert response.status_code == 200 and response.get_json()["title"] == "Python 3"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"title"}),
        ({"title": ""}, {"title"}),
        ({"title": "x" * 201}, {"title"}),
        ({"title": "x", "capacity": 0}, {"capacity"}),
        ({"title": "x", "capacity": "3"}, {"capacity"}),
        ({"title": "x", "instructor_id": 9}, {"instructor_id"}),
        ({"title": "bad\x00title"}, {"title"}),
    ],
)
def test_bad_course_fields_are_422(client, teacher, fake_courses, body, fields):
    details = assert_error(client.post(COURSES, json=body, headers=teacher), 422, "invalid_input")
    assert {d["field"] for d in details["details"]} == fields
    assert fake_courses.courses == {}


# ----------------------------------------------------------------- who sees what


def test_a_draft_is_not_found_for_anyone_but_its_teacher_and_admins(
    client, teacher, student, admin, draft
):
    path = f"{COURSES}/{draft['id']}"
    assert client.get(path, headers=teacher).status_code == 200
    assert client.get(path, headers=admin).status_code == 200
    assert_error(client.get(path, headers=student), 404, "not_found")
    assert_error(client.get(f"{path}/lessons", headers=student), 404, "not_found")
    assert client.get(COURSES, headers=student).get_json()["items"] == []


def test_another_instructor_gets_404_for_a_draft_and_403_once_published(
    client, login, draft, fake_courses, teacher
):
    rival = bearer(login("rita@example.com", role="instructor")["access_token"])
    path = f"{COURSES}/{draft['id']}"
    assert_error(client.patch(path, json={"title": "Mine"}, headers=rival), 404, "not_found")
    job = client.post(f"{path}/publish", headers=teacher).get_json()
    fake_courses.run_job(job["id"])
    body = assert_error(client.patch(path, json={"title": "Mine"}, headers=rival), 403, "forbidden")
    assert "instructor" in body["message"]
    assert fake_courses.courses[draft["id"]].title == "Python"


def test_published_courses_are_listed_newest_first_and_paged(
    client, student, teacher, fake_courses
):
    ids = [fake_courses.add(1, f"Course {n}", published=True).id for n in range(3)]
    fake_courses.add(1, "Still a draft")
    page = client.get(f"{COURSES}?limit=2", headers=student).get_json()
    assert ([c["id"] for c in page["items"]], page["total"]) == (ids[::-1][:2], 3)
    rest = client.get(f"{COURSES}?limit=2&offset=2", headers=student).get_json()
    assert [c["id"] for c in rest["items"]] == ids[:1]
    assert_error(client.get(f"{COURSES}?limit=0", headers=student), 422, "invalid_input")
    assert_error(client.get(COURSES), 401, "unauthorized")


# ----------------------------------------------------------------- lessons


def test_a_lesson_as_json_text(client, teacher, draft, fake_courses):
    body = {"title": "Closures", "text": "A closure keeps its variables.", "position": 0}
    response = client.post(f"{COURSES}/{draft['id']}/lessons", json=body, headers=teacher)
    assert response.status_code == 201
    lesson = response.get_json()
    assert (lesson["title"], lesson["kind"], lesson["position"]) == ("Closures", "text", 0)
    assert lesson["size"] == len("A closure keeps its variables.")
    listed = client.get(f"{COURSES}/{draft['id']}/lessons", headers=teacher).get_json()["items"]
    assert [item["title"] for item in listed] == ["Closures", "Decorators"]
    assert fake_courses.texts[lesson["id"]] == "A closure keeps its variables."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x"}, "text"),
        ({"title": "x", "text": ""}, "text"),
        ({"title": "x", "text": "y", "position": -1}, "position"),
        ({"title": "x", "text": "y", "file": "z"}, "file"),
        ({"title": "x", "text": None}, "text"),
    ],
)
def test_a_bad_json_lesson_is_422(client, teacher, draft, fake_courses, body, field):
    url = f"{COURSES}/{draft['id']}/lessons"
    details = assert_error(client.post(url, json=body, headers=teacher), 422, "invalid_input")
    assert field in {d["field"] for d in details["details"]}
    assert len(fake_courses.lessons) == 1


def _upload(client, headers, course_id, name, data, **fields):
    form = {"title": fields.pop("title", name), **fields, "file": (io.BytesIO(data), name)}
    return client.post(
        f"{COURSES}/{course_id}/lessons",
        data=form,
        content_type="multipart/form-data",
        headers=headers,
    )


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("notes.pdf", make_pdf(), "pdf"),
        ("notes.md", MARKDOWN, "markdown"),
        ("talk.srt", SRT, "srt"),
    ],
)
def test_an_uploaded_lesson_is_stored_under_its_sha256(
    client, teacher, draft, uploads, fake_courses, name, data, kind
):
    response = _upload(client, teacher, draft["id"], f"../../{name}", data, position="0")
    assert response.status_code == 201, response.get_json()
    lesson = response.get_json()
    assert (lesson["kind"], lesson["size"], lesson["position"]) == (kind, len(data), 0)
    digest = hashlib.sha256(data).hexdigest()
    assert [p.name for p in uploads.iterdir()] == [digest]  # never the client's name
    assert (uploads / digest).read_bytes() == data
    assert lesson["id"] not in fake_courses.texts  # a file, not text


def _raw_multipart(client, headers, course_id, parts: list[tuple[str, str, bytes]]):
    """A multipart body written by hand: (disposition parameters, content type, bytes)."""
    body = b""
    for disposition, content_type, data in parts:
        body += b"--BOUNDARY\r\nContent-Disposition: form-data; " + disposition.encode() + b"\r\n"
        if content_type:
            body += b"Content-Type: " + content_type.encode() + b"\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += b"--BOUNDARY--\r\n"
    return client.post(
        f"{COURSES}/{course_id}/lessons",
        data=body,
        content_type="multipart/form-data; boundary=BOUNDARY",
        headers=headers,
    )


@pytest.mark.parametrize(
    ("content_type", "data", "kind"),
    [("text/markdown", MARKDOWN, "markdown"), ("application/pdf", make_pdf(), "pdf")],
)
def test_a_file_part_without_a_filename_is_read_by_its_content_type(
    client, teacher, draft, uploads, content_type, data, kind
):
    """RFC 7578 makes the filename optional; the part's own Content-Type then names the kind
    (and a binary part keeps its bytes: werkzeug's parser would decode it as text)."""
    parts = [('name="title"', "", b"Notes"), ('name="file"', content_type, data)]
    response = _raw_multipart(client, teacher, draft["id"], parts)
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["kind"], response.get_json()["size"]) == (kind, len(data))
    assert (uploads / hashlib.sha256(data).hexdigest()).read_bytes() == data


@pytest.mark.parametrize(
    "raw",
    [
        b"no boundary at all",
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="title"\r\n\r\nx',  # cut short
        b"--BOUNDARY\r\nX-No-Disposition: 1\r\n\r\nx\r\n--BOUNDARY--\r\n",
    ],
)
def test_a_malformed_multipart_body_is_400(client, teacher, draft, fake_courses, raw):
    response = client.post(
        f"{COURSES}/{draft['id']}/lessons",
        data=raw,
        content_type="multipart/form-data; boundary=BOUNDARY",
        headers=teacher,
    )
    assert_error(response, 400, "bad_request")
    assert len(fake_courses.lessons) == 1


def test_the_same_bytes_are_stored_once(client, teacher, draft, uploads):
    for name in ("a.md", "b.md"):
        assert _upload(client, teacher, draft["id"], name, MARKDOWN).status_code == 201
    assert len(list(uploads.iterdir())) == 1


def test_an_unsupported_file_is_415_and_nothing_is_kept(
    client, teacher, draft, uploads, fake_courses
):
    response = _upload(client, teacher, draft["id"], "photo.png", PNG)
    assert "PNG" in assert_error(response, 415, "unsupported_media_type")["message"]
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert len(fake_courses.lessons) == 1


def test_a_corrupt_pdf_is_422_and_nothing_is_kept(client, teacher, draft, uploads, fake_courses):
    response = _upload(client, teacher, draft["id"], "broken.pdf", b"%PDF-1.4\nnot a pdf at all")
    body = assert_error(response, 422, "invalid_input")
    assert [d["field"] for d in body["details"]] == ["file"]
    assert list(uploads.iterdir()) == []  # the copy was removed
    assert len(fake_courses.lessons) == 1


def test_an_upload_without_a_file_or_title_is_422(client, teacher, draft):
    url = f"{COURSES}/{draft['id']}/lessons"
    no_file = client.post(
        url, data={"title": "x"}, content_type="multipart/form-data", headers=teacher
    )
    assert [d["field"] for d in assert_error(no_file, 422, "invalid_input")["details"]] == ["file"]
    no_title = client.post(
        url,
        data={"file": (io.BytesIO(MARKDOWN), "a.md")},
        content_type="multipart/form-data",
        headers=teacher,
    )
    assert "title" in {d["field"] for d in assert_error(no_title, 422, "invalid_input")["details"]}
    empty = _upload(client, teacher, draft["id"], "empty.md", b"")
    assert_error(empty, 422, "invalid_input")


def test_an_upload_over_its_limit_is_413_while_json_keeps_its_own(
    make_app, login, fake_courses, uploads
):
    app = make_app(MAX_CONTENT_LENGTH=2048, UPLOAD_MAX_BYTES=8192)
    client = app.test_client()
    teacher = bearer(login("tess@example.com", role="instructor")["access_token"])
    course = fake_courses.add(1)
    big_but_allowed = MARKDOWN + b"word " * 1000  # over the JSON limit, under the upload one
    assert _upload(client, teacher, course.id, "big.md", big_but_allowed).status_code == 201

    too_big = _upload(client, teacher, course.id, "huge.md", MARKDOWN + b"word " * 2000)
    assert "8192 bytes" in assert_error(too_big, 413, "payload_too_large")["message"]
    assert len(list(uploads.iterdir())) == 1

    text = {"title": "Long", "text": "word " * 1000}
    as_json = client.post(f"{COURSES}/{course.id}/lessons", json=text, headers=teacher)
    assert "2048 bytes" in assert_error(as_json, 413, "payload_too_large")["message"]
    register = client.post(
        "/api/auth/register",
        data=json.dumps({"email": "x@example.com", "password": "p" * 3000, "name": "X"}),
        content_type="application/json",
    )
    assert "2048 bytes" in assert_error(register, 413, "payload_too_large")["message"]
    # A multipart body to a route without uploads keeps the JSON limit (and is not JSON: 415).
    other = client.post(
        "/api/products",
        data={"file": (io.BytesIO(b"x" * 4000), "a.md")},
        content_type="multipart/form-data",
        headers=teacher,
    )
    assert_error(other, 413, "payload_too_large")


def test_a_body_that_is_neither_json_nor_multipart_is_415(client, teacher, draft):
    url = f"{COURSES}/{draft['id']}/lessons"
    response = client.post(url, data="title=x", content_type="text/plain", headers=teacher)
    assert_error(response, 415, "unsupported_media_type")


# ----------------------------------------------------------------- publishing


def test_publish_is_202_with_the_jobs_location(client, teacher, draft, fake_courses):
    response = client.post(f"{COURSES}/{draft['id']}/publish", headers=teacher)
    assert response.status_code == 202
    job = response.get_json()
    assert re.fullmatch(r"[0-9a-f]{32}", job["id"])
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    assert (job["status"], job["step"], job["percent"], job["steps_total"]) == (
        "queued",
        "validate",
        0,
        6,
    )
    assert client.get(response.headers["Location"], headers=teacher).get_json() == job
    assert_error(client.post(f"{COURSES}/{draft['id']}/publish", headers=teacher), 409, "conflict")

    fake_courses.run_job(job["id"])

    done = client.get(f"/api/jobs/{job['id']}", headers=teacher).get_json()
    assert (done["status"], done["step"], done["percent"]) == ("succeeded", "publish", 100)
    course = client.get(f"{COURSES}/{draft['id']}", headers=teacher).get_json()
    assert course["status"] == "published" and course["published_at"] is not None


def test_a_course_without_lessons_cannot_be_published(client, teacher):
    course = client.post(COURSES, json={"title": "Empty"}, headers=teacher).get_json()
    response = client.post(f"{COURSES}/{course['id']}/publish", headers=teacher)
    assert "lesson" in assert_error(response, 409, "conflict")["message"]


def test_a_job_is_for_its_teacher_and_admins(client, teacher, student, admin, draft):
    job = client.post(f"{COURSES}/{draft['id']}/publish", headers=teacher).get_json()
    url = f"/api/jobs/{job['id']}"
    assert client.get(url, headers=admin).status_code == 200
    assert_error(client.get(url, headers=student), 404, "not_found")
    assert_error(client.get(f"/api/jobs/{'0' * 32}", headers=teacher), 404, "not_found")
    for bad in ("nope", "A" * 32, "0" * 31, "0" * 33):
        assert_error(client.get(f"/api/jobs/{bad}", headers=teacher), 404, "not_found")
    assert_error(client.get(url), 401, "unauthorized")


def test_lessons_wait_while_the_course_is_published(client, teacher, draft):
    client.post(f"{COURSES}/{draft['id']}/publish", headers=teacher)
    body = {"title": "Late", "text": "Too late."}
    response = client.post(f"{COURSES}/{draft['id']}/lessons", json=body, headers=teacher)
    assert_error(response, 409, "conflict")


# ----------------------------------------------------------------- students


def test_enrolling_is_201_then_409(client, student, published, fake_courses):
    url = f"{COURSES}/{published['id']}/enroll"
    first = client.post(url, headers=student)
    assert first.status_code == 201
    assert (first.get_json()["course_id"], first.get_json()["user_id"]) == (published["id"], 2)
    assert (
        "already enrolled"
        in assert_error(client.post(url, headers=student), 409, "conflict")["message"]
    )
    assert fake_courses.courses[published["id"]].enrolled == 1


def test_a_full_course_is_409_and_a_draft_404(client, student, other, admin, published, draft):
    client.post(f"{COURSES}/{published['id']}/enroll", headers=student)
    client.post(f"{COURSES}/{published['id']}/enroll", headers=admin)  # capacity 2
    full = client.post(f"{COURSES}/{published['id']}/enroll", headers=other)
    assert "full" in assert_error(full, 409, "conflict")["message"]


def test_enrolling_in_a_draft_is_404(client, student, draft):
    assert_error(client.post(f"{COURSES}/{draft['id']}/enroll", headers=student), 404, "not_found")
    assert_error(client.post(f"{COURSES}/999/enroll", headers=student), 404, "not_found")


def test_my_courses_lists_the_enrolments(client, student, other, published, fake_courses):
    second = fake_courses.add(1, "Rust", published=True)
    client.post(f"{COURSES}/{published['id']}/enroll", headers=student)
    client.post(f"{COURSES}/{second.id}/enroll", headers=student)
    mine = client.get("/api/me/courses", headers=student).get_json()["items"]
    assert [m["course"]["id"] for m in mine] == [second.id, published["id"]]
    assert all(m["enrolled_at"] for m in mine)
    assert client.get("/api/me/courses", headers=other).get_json() == {"items": []}
    assert_error(client.get("/api/me/courses"), 401, "unauthorized")


def _lessons(client, headers, course_id) -> list[dict]:
    items: list[dict] = client.get(f"{COURSES}/{course_id}/lessons", headers=headers).get_json()[
        "items"
    ]
    return items


def test_progress_is_cached_and_completing_a_lesson_invalidates_it(
    client, teacher, student, fake_courses, transport, fake_redis
):
    course = fake_courses.add(1, lessons=("One.", "Two.", "Three.", "Four."), published=True)
    client.post(f"{COURSES}/{course.id}/enroll", headers=student)
    url = f"{COURSES}/{course.id}/progress"

    first, second = client.get(url, headers=student), client.get(url, headers=student)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.get_json() == second.get_json()
    assert (first.get_json()["completed"], first.get_json()["total"]) == (0, 4)
    assert transport.methods("courses").count("get_progress") == 1
    assert 0 < fake_redis.ttl(f"gw:cache:progress:{course.id}:2") <= 300

    lesson = _lessons(client, student, course.id)[0]
    done = client.post(f"/api/lessons/{lesson['id']}/complete", headers=student)
    assert done.status_code == 200
    assert (done.get_json()["completed"], done.get_json()["percent"]) == (1, 25)

    after = client.get(url, headers=student)
    assert after.headers["X-Cache"] == "MISS" and after.get_json() == done.get_json()
    again = client.post(f"/api/lessons/{lesson['id']}/complete", headers=student)
    assert again.get_json() == done.get_json()  # idempotent


def test_progress_is_each_students_own(client, student, other, published):
    client.post(f"{COURSES}/{published['id']}/enroll", headers=student)
    url = f"{COURSES}/{published['id']}/progress"
    assert client.get(url, headers=student).headers["X-Cache"] == "MISS"
    not_enrolled = client.get(url, headers=other)  # never the other student's cached entry
    assert_error(not_enrolled, 404, "not_found")
    assert "X-Cache" not in not_enrolled.headers


def test_completing_a_lesson_needs_an_enrolment(client, student, published):
    lesson = _lessons(client, student, published["id"])[0]
    url = f"/api/lessons/{lesson['id']}/complete"
    assert_error(client.post(url, headers=student), 403, "forbidden")
    assert_error(client.post("/api/lessons/999/complete", headers=student), 404, "not_found")
    assert_error(client.post("/api/lessons/0/complete", headers=student), 404, "not_found")


# ----------------------------------------------------------------- search


def test_search_is_for_the_teacher_and_enrolled_students(
    client, teacher, student, other, admin, published, draft
):
    url = f"{COURSES}/{published['id']}/search?q=decorators"
    assert_error(client.get(url, headers=student), 403, "forbidden")  # not enrolled yet
    client.post(f"{COURSES}/{published['id']}/enroll", headers=student)
    for who in (teacher, student, admin):
        response = client.get(url, headers=who)
        assert response.status_code == 200
        [passage] = response.get_json()["items"]
        assert passage["text"] == "Decorators wrap functions."
        assert passage["lesson_id"] == 1 and passage["score"] > 0
    assert_error(client.get(url, headers=other), 403, "forbidden")


def test_search_of_a_draft_is_404_for_students(client, login, teacher, student):
    course = client.post(COURSES, json={"title": "Secret"}, headers=teacher).get_json()
    url = f"{COURSES}/{course['id']}/search?q=anything"
    assert_error(client.get(url, headers=student), 404, "not_found")
    assert client.get(url, headers=teacher).get_json() == {"items": []}


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "q"), ("q=", "q"), ("q=%20", "q"), ("q=a%00b", "q"), ("q=x&limit=21", "limit")],
)
def test_a_bad_search_is_422(client, teacher, published, transport, query, field):
    url = f"{COURSES}/{published['id']}/search?{query}"
    body = assert_error(client.get(url, headers=teacher), 422, "invalid_input")
    assert [d["field"] for d in body["details"]] == [field]
    assert transport.methods("content") == []


def test_search_limits_the_passages(client, teacher, fake_courses):
    texts = tuple(f"Decorators, part {n}." for n in range(8))
    course = fake_courses.add(1, lessons=texts, published=True)
    url = f"{COURSES}/{course.id}/search?q=decorators&limit=3"
    assert len(client.get(url, headers=teacher).get_json()["items"]) == 3


def test_admins_list_the_newest_jobs_first(client, teacher, student, admin, fake_courses):
    jobs = []
    for title in ("First", "Second", "Third"):
        course = client.post(COURSES, json={"title": title}, headers=teacher).get_json()
        lesson = {"title": "One", "text": "Some text."}
        client.post(f"{COURSES}/{course['id']}/lessons", json=lesson, headers=teacher)
        jobs.append(client.post(f"{COURSES}/{course['id']}/publish", headers=teacher).get_json())
    fake_courses.run_job(jobs[0]["id"])
    response = client.get("/api/jobs", headers=admin)
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [job["id"] for job in items] == [job["id"] for job in reversed(jobs)]
    assert [job["status"] for job in items] == ["queued", "queued", "succeeded"]
    limited = client.get("/api/jobs?limit=2", headers=admin).get_json()["items"]
    assert limited == items[:2]
    for who in (teacher, student):
        assert_error(client.get("/api/jobs", headers=who), 403, "forbidden")
    assert_error(client.get("/api/jobs"), 401, "unauthorized")


@pytest.mark.parametrize("limit", ["0", "51", "ten"])
def test_a_bad_jobs_limit_is_422(client, admin, limit):
    response = client.get(f"/api/jobs?limit={limit}", headers=admin)
    details = assert_error(response, 422, "invalid_input")["details"]
    assert [detail["field"] for detail in details] == ["limit"]
