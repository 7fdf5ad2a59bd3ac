"""/dashboard: the admin page and its files, served from the package with a strict CSP."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from contracts.registry import EVENTS
from gateway.routes.dashboard import ASSETS


def _csp(response: TestResponse) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_the_page_is_served_with_a_strict_csp(client: FlaskClient) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = _csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.get_data(as_text=True)
    assert '<script src="/dashboard/dashboard.js"' in page
    assert '<link rel="stylesheet" href="/dashboard/dashboard.css">' in page


def test_the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere(
    client: FlaskClient,
) -> None:
    page = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None  # the CSP would block it
    assert "<style" not in page and " style=" not in page
    assert re.search(r"(src|href)=\"(https?:)?//", page) is None  # no CDN


@pytest.mark.parametrize(
    ("name", "media"), [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")]
)
def test_its_files_are_served_with_their_media_type(
    client: FlaskClient, name: str, media: str
) -> None:
    response = client.get(f"/dashboard/{name}")
    assert response.status_code == 200
    assert response.mimetype == media
    assert response.get_data() == (ASSETS / name).read_bytes()
    assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize(
    "path", ["/dashboard/index.html", "/dashboard/../app.py", "/dashboard/x.js"]
)
def test_nothing_else_is_served(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_script_keeps_tokens_in_memory_and_strips_emails() -> None:
    script = (ASSETS / "dashboard.js").read_text()
    assert "localStorage" not in script and "sessionStorage" not in script
    assert "document.cookie" not in script
    assert "innerHTML" not in script  # server text goes in with textContent only
    assert "/email/i.test(key)" in script


def test_no_event_on_the_stream_carries_an_email_address() -> None:
    # The stream relays events as published: the page shows their ids, never an address.
    for event in EVENTS:
        assert not [name for name in event.model_fields if "email" in name.lower()], event.type
