"""/dashboard in a real headless Chromium (the system's, driven by Playwright) on the whole
running mesh: sign-in, live events, the recent publishing jobs' progress bars, health, charts, the
"admins only" answer and reconnecting after the stream drops."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from contracts.courses import JobOut
from tests.conftest import in_ci
from tests.e2e.conftest import PASSWORD, REPO, VENV_BIN, Mesh, User, eventually
from tests.e2e.test_e2e_commerce import new_product, order
from tests.e2e.test_e2e_learning import DECORATORS, account, add_lesson, new_course

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = REPO / "var" / "screenshots" / "dashboard.png"
WAIT_MS = 30_000


def chromium() -> str | None:
    """The system's Chromium: $CHROMIUM, else chromium on the PATH, else /usr/bin/chromium."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def no_browser(reason: str) -> None:
    """Skip outside CI; in CI a missing browser is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the dashboard test must run)")
    pytest.skip(f"{reason}: install it with `apt-get install chromium` to run this test")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the playwright package is not installed")
    executable = chromium()
    if executable is None:
        no_browser("no Chromium found")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield opened
    context.close()
    csp = [error for error in errors if "Content Security Policy" in error]
    assert not csp, csp  # the page runs under its own strict policy
    assert not [e for e in errors if "Uncaught" in e], errors


@pytest.fixture
def admin(mesh: Mesh) -> User:
    """A new administrator, made like ``make admin`` does: one per test, so that the streams
    a test leaves open (until their slot lapses) never count against the next one's cap."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    made = subprocess.run(
        [str(VENV_BIN / "mesh"), "create-admin", "--email", email],
        cwd=REPO,
        env={**mesh.env, "MESH_ADMIN_PASSWORD": PASSWORD},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return User(id=0, email=email, name="Admin")


def sign_in(page: Any, mesh: Mesh, user: User) -> None:
    page.goto(mesh.url("/dashboard"))
    page.fill("#login-email", user.email)
    page.fill("#login-password", user.password)
    page.click("#login button[type=submit]")


def live_dashboard(page: Any, mesh: Mesh, admin: User) -> None:
    from playwright.sync_api import expect

    sign_in(page, mesh, admin)
    expect(page.locator("#stream-state")).to_have_text("live", timeout=WAIT_MS)


def see_event(page: Any, event_type: str, key: str, value: int) -> None:
    """Wait for the row of the ``event_type`` event carrying ``key=value``."""
    from playwright.sync_api import expect

    row = page.locator(f'#event-list tr[data-type="{event_type}"] td.ids').filter(
        has_text=re.compile(rf"(^|\s){key}={value}(\s|$)")
    )
    try:
        expect(row).to_have_count(1, timeout=WAIT_MS)
    except AssertionError as exc:
        shown = page.locator("#stream-state").inner_text(), page.locator("#events").inner_text()
        raise AssertionError(f"{exc}\nstream: {shown[0]}\nevents shown: {shown[1]}") from exc


RECORD_STATES = """() => {
  window.streamStates = [];
  const pill = document.getElementById("stream-state");
  new MutationObserver(() => window.streamStates.push(pill.textContent))
    .observe(pill, {childList: true, characterData: true, subtree: true});
}"""
"""Keeps every text the stream's state pill shows, however briefly."""


def recent_jobs_listed(page: Any) -> list[str]:
    """The job ids of the page's next look at ``GET /api/jobs``."""
    with page.expect_response(lambda r: "/api/jobs?limit=" in r.url, timeout=WAIT_MS) as listed:
        pass
    assert listed.value.status == 200
    return [job["id"] for job in listed.value.json()["items"]]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_the_dashboard_shows_events_jobs_health_and_charts(
    mesh: Mesh, admin: User, page: Any
) -> None:
    from playwright.sync_api import expect

    live_dashboard(page, mesh, admin)
    headers = {"Authorization": f"Bearer {mesh.login(admin)['access_token']}"}

    # A sign-up and an order: both events appear, with their ids and never an address.
    buyer = mesh.register()
    product = new_product(mesh, headers, stock=5)
    buyer_headers = {"Authorization": f"Bearer {mesh.login(buyer)['access_token']}"}
    placed = order(mesh, buyer_headers, product["id"])
    assert placed.status_code == 201, placed.text
    see_event(page, "user.registered", "user_id", buyer.id)
    see_event(page, "order.created", "order_id", placed.json()["id"])
    expect(page.locator('#event-counts li[data-type="order.created"] b')).to_have_text(
        re.compile(r"[1-9]\d*")
    )
    assert page.locator("#sparkline polyline").count() == 1
    assert "@" not in page.locator("#events").inner_text()

    # A publishing job, never typed in: the page's list of recent jobs brings it, and its
    # bar reaches 100 %.
    teacher = account(mesh, "instructor")
    course = new_course(mesh, teacher)
    add_lesson(mesh, teacher, course, title="Decorators", text=DECORATORS)
    started = requests.post(mesh.url(f"/api/courses/{course}/publish"), headers=teacher, timeout=15)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    eventually(
        lambda: job_id in recent_jobs_listed(page), timeout=30, interval=0, what="job listed"
    )
    job = page.locator(f'#job-list tr[data-job="{job_id}"]')
    expect(job).to_have_attribute("data-status", "succeeded", timeout=180_000)
    expect(job.locator("progress")).to_have_js_property("value", 100)
    expect(job).to_contain_text("100 %")
    see_event(page, "course.published", "course_id", course)

    # Health: every service of /ready, and the outbox backlog from /metrics.
    expect(page.locator('#health-list tr[data-process="users"] td.state-ok')).to_have_text("ok")
    expect(page.locator('#health-list tr[data-process="gateway"] td.state-ok')).to_have_text("ok")
    expect(page.locator("#queue-list tr")).not_to_have_count(0)

    # Analytics: today's bar counts the sign-up once the analytics service has it.
    bar = page.locator(f'#chart-signups rect[data-day="{today()}"]')

    def counted() -> bool:
        page.click("#range button")
        page.wait_for_timeout(500)
        value = bar.get_attribute("data-value") if bar.count() else None
        return value is not None and int(value) >= 1

    eventually(counted, timeout=60, interval=1, what="today's sign-ups in the chart")
    expect(page.locator("#chart-orders")).to_have_attribute("data-drawn", "true")
    assert page.locator("#chart-signups rect").count() == 14  # the default range: two weeks

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0


def test_a_non_admin_is_told_the_page_is_for_admins_only(mesh: Mesh, page: Any) -> None:
    from playwright.sync_api import expect

    sign_in(page, mesh, mesh.register())
    expect(page.locator("#message")).to_contain_text("admins only", timeout=WAIT_MS)
    expect(page.locator("#board")).to_be_hidden()


def test_the_page_reconnects_when_the_stream_drops(mesh: Mesh, admin: User, page: Any) -> None:
    from playwright.sync_api import expect

    live_dashboard(page, mesh, admin)
    page.evaluate(RECORD_STATES)
    restarted = mesh.supervisorctl("restart", "gateway", timeout=120)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    expect(page.locator("#stream-state")).to_have_text("live", timeout=90_000)
    shown = page.evaluate("window.streamStates")
    assert any(text.startswith("reconnecting in") for text in shown), shown
    later = mesh.register()
    see_event(page, "user.registered", "user_id", later.id)


def test_a_failed_job_shows_its_error_and_sign_out_revokes(
    mesh: Mesh, admin: User, page: Any
) -> None:
    from playwright.sync_api import expect

    # A real job cannot be made to fail on demand here: the browser gets a failed job, in
    # the courses contract's own shape, for one made-up id; everything else is the mesh.
    now = datetime.now(UTC)
    failed = JobOut(
        id=uuid.uuid4().hex,
        course_id=1,
        status="failed",
        step="embed",
        step_index=4,
        percent=50,
        error="the embedding model did not answer",
        created_at=now,
        updated_at=now,
    )
    page.route(
        f"**/api/jobs/{failed.id}",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=failed.model_dump_json()
        ),
    )
    live_dashboard(page, mesh, admin)
    page.fill("#job-id", failed.id)
    page.click("#follow-job button")
    job = page.locator(f'#job-list tr[data-job="{failed.id}"]')
    expect(job).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
    expect(job.locator(".error")).to_have_text("the embedding model did not answer")
    expect(job.locator("progress")).to_have_js_property("value", 50)

    with page.expect_response("**/api/auth/logout") as logout:
        page.click("#sign-out")
    assert logout.value.status == 204
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()


def test_parallel_calls_with_an_expired_token_refresh_it_once(
    mesh: Mesh, admin: User, page: Any
) -> None:
    from playwright.sync_api import expect

    live_dashboard(page, mesh, admin)
    expect(page.locator("#chart-signups")).to_have_attribute("data-drawn", "true")
    # The three reports are asked for at once; each is first answered 401, as when the access
    # token expires. A second use of one refresh token would be taken for a replay and end
    # the login, so the page must rotate it once and retry all three with the new token.
    refused: list[str] = []

    def expire_once(route: Any) -> None:
        if route.request.url in refused:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.fulfill(status=401, content_type="application/json", body='{"message": "x"}')

    page.route("**/api/reports/**", expire_once)
    refreshes: list[int] = []
    page.on(
        "response",
        lambda response: (
            refreshes.append(response.status) if "/auth/refresh" in response.url else None
        ),
    )
    page.evaluate("document.getElementById('chart-signups').dataset.drawn = 'no'")
    page.click("#range button")
    expect(page.locator("#chart-signups")).to_have_attribute("data-drawn", "true", timeout=WAIT_MS)
    assert len(refused) == 3, refused
    assert refreshes == [200], refreshes
    expect(page.locator("#board")).to_be_visible()
    expect(page.locator("#stream-state")).to_have_text("live")


def test_a_stream_over_the_cap_says_why_and_connects_once_a_slot_frees(
    mesh: Mesh, admin: User, page: Any
) -> None:
    from playwright.sync_api import expect

    token = mesh.login(admin)["access_token"]
    held = [
        requests.get(
            mesh.url("/api/events/stream"),
            headers={"Authorization": f"Bearer {token}"},
            stream=True,
            timeout=30,
        )
        for _ in range(3)  # SSE_MAX_PER_USER
    ]
    try:
        assert [answer.status_code for answer in held] == [200, 200, 200]
        sign_in(page, mesh, admin)
        expect(page.locator("#stream-state")).to_have_text(
            re.compile(r"reconnecting in \d+ s \(too many open streams\)"), timeout=WAIT_MS
        )
    finally:
        for answer in held:
            answer.close()
    expect(page.locator("#stream-state")).to_have_text("live", timeout=90_000)
