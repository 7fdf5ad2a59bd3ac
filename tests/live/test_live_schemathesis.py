"""Schemathesis over the live mesh's own OpenAPI document (``/api/openapi.json``).

Every operation but the never-ending SSE streams gets positive and negative generated cases,
once as a shopper and once as an administrator (at least ``MIN_CASES`` cases in all). The
rule is the one a client relies on: no 5xx answer, except a 503 the operation documents.
Every failure is listed with its request, then the test fails.

The formats JSON Schema cannot check are generated as a client would send them (as in
``tests/unit/test_gateway_schemathesis.py``): the lesson documents of each media type and the
``x-name`` format. A case that would spend its token (log out, refresh) gets a fresh login.
An answer that may be a stream (the assistant's) is asked for as JSON.
"""

from __future__ import annotations

import os
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode

from contracts.users import NAME_FORMAT
from tests.e2e.conftest import PASSWORD, Mesh

pytestmark = pytest.mark.e2e

EVENT_STREAM = "text/event-stream"
JSON = "application/json"
SPENDS_TOKEN = {"/api/auth/logout", "/api/auth/refresh"}
CASES_PER_MODE = int(os.environ.get("MESH_LIVE_CASES", "18"))
"""Cases per operation, generation mode and role."""
MIN_CASES = 2000

WORDS = st.text(string.ascii_letters + string.digits + " .,", min_size=1, max_size=60).filter(
    str.strip
)
PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
DOCUMENTS: dict[str, st.SearchStrategy[bytes]] = {
    "application/pdf": st.just(PDF),
    "application/x-subrip": WORDS.map(
        lambda t: f"1\n00:00:01,000 --> 00:00:02,000\n{t}\n\n".encode()
    ),
    "text/vtt": WORDS.map(lambda t: f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{t}\n".encode()),
    "text/html": WORDS.map(lambda t: f"<!doctype html><p>{t}</p>".encode()),
    "text/markdown": WORDS.map(lambda t: f"# Lesson\n\n{t}\n".encode()),
    "text/plain": WORDS.map(str.encode),
}


def register_formats() -> None:
    for media_type, documents in DOCUMENTS.items():
        schemathesis.openapi.media_type(media_type, documents)
    schemathesis.openapi.format(
        NAME_FORMAT,
        st.text(st.characters(exclude_categories=["C"]), min_size=1, max_size=100).filter(
            str.strip
        ),
    )


@dataclass
class Role:
    """One account: a cached access token, and fresh logins for the cases that spend one."""

    mesh: Mesh
    email: str
    access: str = ""
    suspect: bool = False  # the last case with the cached token got a 401

    def login(self) -> dict[str, Any]:
        answer = requests.post(
            self.mesh.url("/api/auth/login"),
            json={"email": self.email, "password": PASSWORD},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens

    def token_for(self, case: Case) -> str:
        if case.path in SPENDS_TOKEN:
            tokens = self.login()
            return str(tokens["refresh_token" if case.path.endswith("refresh") else "access_token"])
        if not self.access or (self.suspect and not self.still_valid()):
            self.access = str(self.login()["access_token"])
        self.suspect = False
        return self.access

    def still_valid(self) -> bool:
        answer = requests.get(
            self.mesh.url("/api/users/me"),
            headers={"Authorization": f"Bearer {self.access}"},
            timeout=30,
        )
        return answer.status_code == 200


@dataclass
class Run:
    """What the cases met: how many ran, and every server error."""

    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)

    def record(self, case: Case, response: Any) -> None:
        self.cases += 1
        status = int(response.status_code)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        documented = case.operation.definition.raw.get("responses", {})
        if status >= 500 and not (status == 503 and "503" in documented):
            self.server_errors.append(
                f"{status} {case.method} {case.formatted_path} query={case.query!r} "
                f"body={str(case.body)[:300]!r}: {response.text[:300]!r}"
            )


def answer_media(operation: Any) -> set[str]:
    """The media types of the operation's 200 answer."""
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return set(ok.get("content") or {})


def run_operation(operation: Any, role: Role, mode: GenerationMode, run: Run) -> None:
    # An answer that may be an SSE stream is asked for as JSON: a stream ends only with the answer.
    accept = {"Accept": JSON} if EVENT_STREAM in answer_media(operation) else {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Case) -> None:
        headers = {"Authorization": f"Bearer {role.token_for(case)}", **accept}
        response = case.call(headers=headers, timeout=60)
        role.suspect = response.status_code == 401 and case.path not in SPENDS_TOKEN
        run.record(case, response)

    try:
        one()
    except Unsatisfiable:  # no case of this mode exists (say, a negative case of no parameters)
        run.unsatisfiable.append(f"{operation.label} {mode.value}")


@pytest.mark.timeout(1800)
def test_the_live_mesh_keeps_its_document(mesh: Mesh) -> None:
    register_formats()
    schema = schemathesis.openapi.from_url(mesh.url("/api/openapi.json"))
    admin_email = f"live-admin-{uuid.uuid4().hex[:8]}@example.com"
    made = mesh.run(
        mesh.bin / "mesh",
        "create-admin",
        "--email",
        admin_email,
        env={"MESH_ADMIN_PASSWORD": PASSWORD},
    )
    assert made.returncode == 0, made.stdout + made.stderr
    roles = [Role(mesh, mesh.register(name="Live Shopper").email), Role(mesh, admin_email)]
    run = Run()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if answer_media(operation) == {EVENT_STREAM}:
            continue  # a stream that never ends: tests/e2e and the unit tests cover them
        for role in roles:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_operation(operation, role, mode, run)

    print(
        f"schemathesis over the live mesh: {run.cases} cases, "
        f"statuses {sorted(run.statuses.items())}; no case for {sorted(set(run.unsatisfiable))}"
    )
    assert not run.server_errors, "\n".join(run.server_errors)
    assert run.cases >= MIN_CASES
