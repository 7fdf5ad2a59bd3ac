"""Schemathesis against the gateway on fakes: the OpenAPI document must be true.

The app's own document (``/api/openapi.json``) is loaded in-process (WSGI) and every operation
goes through the stateless phases (examples, coverage, fuzzing) with every check schemathesis
has (``--checks all``). The fakes are seeded so that the happy paths are reachable: products, a
student with an order, a wishlist, notifications and a conversation with the assistant, an
instructor with a published course and a draft, and analytics that counted every event the
seeding made. Each case gets a fresh token (a refresh token for the refresh endpoint) of the
administrator, the student or the instructor in turn, so every role meets every operation and
a generated logout cannot revoke the token of the next case.

The document names what JSON Schema cannot check, and this module teaches schemathesis to
generate it (as a client would have to):

- a lesson's file part is a document of one of the content types the document lists
  (``encoding.contentType``): a real PDF made with fpdf2, Markdown, HTML, WebVTT, SRT, text;
- an account's name has the format ``x-name`` (no character of Unicode's C categories);
- a report's range keeps the rule its description states of two parameters (``from`` not after
  ``to``, at most ``MAX_DAYS`` days): the positive cases of a report are brought within it.

And where random ids never lead, :func:`steer` takes every other positive case: an ask to the
published course (so answers found and not found, from the course's content, meet the checks),
a conversation to the seeded one.

The answers chosen by the Accept header: schemathesis sends ``Accept: */*``, which the gateway
answers with JSON; the cases of the report routes alternate it with ``Accept: text/csv``, so the
CSV answers meet every check too. ``POST /api/assistant/ask`` is exercised as JSON only: its
Server-Sent Events need a Redis with streams and end only when the answer does, and
``test_gateway_assistant.py`` tests them with a real SSE client.

Left out, each for a stated reason:

- ``GET /api/events/stream`` never ends (an SSE stream): ``test_gateway_resources.py`` tests it;
  nor does ``GET /api/notifications/stream``: ``test_gateway_user_stream.py`` tests it;
- the check ``max_response_time`` runs only when given a limit (``--checks all`` leaves it out
  too): timings of an in-process app on a busy machine are not part of the document;
- the stateful phase: these checks run stateless; ``use_after_free``,
  ``ensure_resource_availability`` and ``object_level_authorization`` are in the list but only
  act on the history a stateful run (and, for the last, several users) would give them.
"""

from __future__ import annotations

import html
import itertools
import os
import string
import tempfile
from collections.abc import Iterator
from dataclasses import fields
from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from fpdf import FPDF
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import AuthContext, Case
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config._checks import _BUILTIN_CHECK_NAMES
from schemathesis.generation import GenerationMode

from contracts.analytics import MAX_DAYS
from contracts.assistant import AskRequest
from contracts.orders import OrderCreate
from contracts.users import NAME_FORMAT
from gateway.app import create_app
from gateway.auth import issue_pair
from gateway.deps import Services
from gateway.uploads import MEDIA_TYPES
from tests.unit.gateway_helpers import TEST_CONFIG, FakeRedis, FakeRpc
from tests.unit.service_fakes import (
    FakeAnalytics,
    FakeAssistant,
    FakeCatalog,
    FakeContent,
    FakeCourses,
    FakeNotifications,
    FakeOrders,
    FakeUsers,
    LocalTransport,
)

STREAM = "/api/events/stream"
NOTIFICATION_STREAM = "/api/notifications/stream"
ASK = "/api/assistant/ask"
CONVERSATION = "/api/assistant/conversations/{conversation_id}"
REPORTS = "/api/reports/"
NOT_RUN = {"max_response_time": "needs a limit; in-process timings are not the document's"}
EXPLORE = int(os.environ.get("MESH_SCHEMATHESIS_EXPLORE", "0"))
"""0 (``make test``): the same cases every run. N > 0: N random fuzzed cases per operation,
new ones every run (``MESH_SCHEMATHESIS_EXPLORE=200 pytest tests/unit/...schemathesis.py``)."""
MAX_EXAMPLES = EXPLORE or 50
"""Fuzzed cases per operation (the examples and coverage phases add their own)."""

load_all_checks()
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]


def test_every_check_schemathesis_has_runs() -> None:
    """``--checks all``: every built-in check, only ``max_response_time`` left out."""
    assert {check.__name__ for check in ALL_CHECKS} == _BUILTIN_CHECK_NAMES - set(NOT_RUN)


# ----------------------------------------------------------------- what a client must send


def _pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, text=text)
    return bytes(pdf.output())


WORDS = st.text(string.ascii_letters + string.digits + " .,", min_size=1, max_size=80).filter(
    str.strip
)
DOCUMENTS: dict[str, st.SearchStrategy[bytes]] = {
    "application/pdf": st.sampled_from([_pdf("Decorators wrap functions."), _pdf("Closures.")]),
    "application/x-subrip": WORDS.map(
        lambda t: f"1\n00:00:01,000 --> 00:00:02,000\n{t}\n\n".encode()
    ),
    "text/vtt": WORDS.map(lambda t: f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{t}\n".encode()),
    "text/html": WORDS.map(lambda t: f"<!doctype html><p>{html.escape(t)}</p>".encode()),
    "text/markdown": WORDS.map(lambda t: f"# Lesson\n\n{t}\n".encode()),
    "text/plain": WORDS.map(str.encode),
}
assert set(DOCUMENTS) == set(MEDIA_TYPES)
for media_type, documents in DOCUMENTS.items():
    schemathesis.openapi.media_type(media_type, documents)
schemathesis.openapi.format(
    NAME_FORMAT,
    st.text(st.characters(exclude_categories=("C",)), min_size=1, max_size=100).filter(str.strip),
)


def within_the_stated_range(case: Case) -> None:
    """A positive case of a report, its ``to`` moved within the range its document allows."""
    if not case.path.startswith(REPORTS) or case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    query = dict(case.query or {})
    try:
        first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
    except (KeyError, TypeError, ValueError):
        return
    span = timedelta(days=MAX_DAYS - 1)
    longest = first + span if first <= date.max - span else date.max
    case.query = {**query, "to": min(max(first, last), longest).isoformat()}


# ----------------------------------------------------------------- the app under test
# Built at import: schemathesis' pytest plugin parametrizes over a schema known at collection
# (its fixture-based lazy schema does not run under pytest 9: it sets ``Node._nodeid``).


def seeded() -> dict[str, Any]:
    """The fakes, with an administrator (user 1), a student (2) with an order, a wishlist,
    notifications and a conversation, an instructor (3) with a published course (1) and a
    draft (2), and analytics that counted every event of all that."""
    users, catalog, notes, content = FakeUsers(), FakeCatalog(), FakeNotifications(), FakeContent()
    orders, courses = FakeOrders(catalog), FakeCourses(content)
    users.add("root@example.com", name="Root", is_admin=True)
    student = users.add("sam@example.com", name="Sam")
    teacher = users.add("tess@example.com", name="Tess", role="instructor")
    lamp = catalog.add("Lamp", price_cents=1999, stock=1_000_000, description="A warm light")
    catalog.add("Desk", price_cents=9900, stock=5)
    catalog.wishlist_add(student.id, lamp.id)
    order = orders.create_order(student.id, OrderCreate(product_id=lamp.id, quantity=1))
    notes.add(student.id, "Welcome")
    notes.add(student.id, "Order placed", order_id=order.id, kind="order.created")
    python = courses.add(
        teacher.id, "Python", lessons=("Decorators wrap functions.",), published=True
    )
    courses.enroll(python.id, student.id)
    courses.add(teacher.id, "Draft", lessons=("Not yet.",))
    assistant, analytics = FakeAssistant(content), FakeAnalytics()
    question = AskRequest(
        course_id=python.id, question="What do decorators wrap?", user_id=student.id
    )
    assistant.ask(question)
    for event in [*users.events, *catalog.events, *orders.events, *courses.events]:
        analytics.count(event)
    return {
        "users": users,
        "catalog": catalog,
        "orders": orders,
        "notifications": notes,
        "courses": courses,
        "content": content,
        "assistant": assistant,
        "analytics": analytics,
    }


UPLOADS = tempfile.TemporaryDirectory(prefix="mesh-schemathesis-")
FAKES = seeded()
APP = create_app(
    {
        **TEST_CONFIG,
        "API_RATE_IP": "1000000/minute",
        "LOGIN_RATE_IP": "1000000/minute",
        "LOGIN_RATE_ACCOUNT": "1000000/minute",
        "LOGIN_RATE_ACCOUNT_TOTAL": "1000000/minute",
        "REGISTER_RATE_IP": "1000000/minute",
        "UPLOAD_MAX_BYTES": 256 * 1024,
        "UPLOADS_PATH": UPLOADS.name,
    },
    rpc=FakeRpc(FAKES),
    redis=FakeRedis(),  # type: ignore[arg-type]
    services=Services.over(LocalTransport(**FAKES)),
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP).exclude(
    path=[STREAM, NOTIFICATION_STREAM]
)


def test_every_service_has_its_fake() -> None:
    assert {field.name for field in fields(Services)} == set(FAKES)


@pytest.fixture(scope="module", autouse=True)
def _remove_the_uploads() -> Iterator[None]:
    yield
    UPLOADS.cleanup()


PUBLISHED = next(c.id for c in FAKES["courses"].courses.values() if c.status == "published")
CONVERSATION_ID = next(iter(FAKES["assistant"].conversations))
TURN = itertools.cycle((False, True))
"""Every other case of the operations :func:`steer` knows takes its other road."""


def steer(case: Case) -> None:
    """Where the random ids would never lead: every other positive case of an ask goes to the
    published course, of a conversation to the seeded one (the student's); every other case of
    a report asks for CSV. An ask is always answered as JSON (see the module's docstring)."""
    positive = case.meta.generation.mode == GenerationMode.POSITIVE
    if case.path == ASK:
        case.headers = {**(case.headers or {}), "Accept": "application/json"}
        body = case.body
        if positive and isinstance(body, dict) and next(TURN):
            case.body = {**body, "course_id": PUBLISHED}
    elif case.path == CONVERSATION and positive and next(TURN):
        case.path_parameters = {**(case.path_parameters or {}), "conversation_id": CONVERSATION_ID}
    elif case.path.startswith(REPORTS):
        if positive:
            within_the_stated_range(case)
        if next(TURN):
            case.headers = {**(case.headers or {}), "Accept": "text/csv"}


IDENTITIES = (1, 2, 3)
"""Whose token each case takes, in turn: the administrator, the student, the instructor."""


@schema.auth(refresh_interval=None)
class FreshTokens:
    """A new token for every case (a refresh token where one is due), of each identity in
    turn: every role meets every operation, and its answers must be documented too."""

    def __init__(self) -> None:
        self.turn = itertools.cycle(IDENTITIES)

    def get(self, case: Case, context: AuthContext) -> str:
        with APP.app_context():
            pair = issue_pair(FAKES["users"].get_user(next(self.turn)))
        return pair.refresh_token if case.path == "/api/auth/refresh" else pair.access_token

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not EXPLORE,
    suppress_health_check=list(HealthCheck),
)
def test_the_gateway_keeps_its_document(case: Case) -> None:
    steer(case)
    case.call_and_validate(checks=ALL_CHECKS)
