"""One client cannot starve the gateway: with a service stopped and many requests waiting on
it, or with event streams up to their caps, the other endpoints still answer at once."""

from __future__ import annotations

import http.client
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import Mesh

pytestmark = pytest.mark.e2e

SSE_MAX_PER_USER = 3  # the defaults the e2e mesh runs with (mesh/settings.py)
SSE_MAX_TOTAL = 6
WORKERS = 2


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def answers_quickly(mesh: Mesh, path: str, headers: dict[str, str] | None = None) -> float:
    """GET ``path``: assert a 200 within 1 s; the seconds it took."""
    started = time.monotonic()
    response = requests.get(mesh.url(path), headers=headers or {}, timeout=30)
    took = time.monotonic() - started
    assert response.status_code == 200, (path, response.status_code, response.text)
    assert took < 1.0, f"GET {path} took {took:.2f} s: the gateway's threads are taken"
    return took


def open_streams(mesh: Mesh) -> float:
    """The streams holding a slot, over every gateway worker (/metrics)."""
    text = requests.get(mesh.url("/metrics"), timeout=10).text
    found = re.search(r"^gateway_sse_streams_open(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_streams_closed(mesh: Mesh) -> None:
    """Wait until the gateway has noticed every closed stream: it does at a stream's next
    writes (a keepalive comes every 15 s), and gives its slot back."""
    mesh.eventually(
        lambda: open_streams(mesh) == 0, timeout=90, interval=1, what="every stream slot back"
    )


def open_stream(mesh: Mesh, token: str) -> tuple[http.client.HTTPConnection, int, dict[str, str]]:
    """Open the caller's notification stream; the connection (left open on a 200), the
    status and the headers."""
    parts = urlsplit(mesh.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    connection.request("GET", "/api/notifications/stream", headers=bearer(token))
    response = connection.getresponse()
    headers = {k.lower(): v for k, v in response.getheaders()}
    if response.status != 200:
        headers["body"] = response.read().decode(errors="replace")  # for a failure's message
        connection.close()
    else:
        assert response.readline().startswith(b"retry: ")  # the stream has started
    return connection, response.status, headers


def test_a_stopped_service_does_not_starve_the_others(mesh: Mesh, access_token: str) -> None:
    headers = bearer(access_token)
    assert requests.get(mesh.url("/api/orders"), headers=headers, timeout=10).status_code == 200
    stopped = mesh.supervisorctl("stop", "orders")
    assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    try:
        with ThreadPoolExecutor(32) as pool:
            waiting = [
                pool.submit(requests.get, mesh.url("/api/orders"), headers=headers, timeout=30)
                for _ in range(32)
            ]
            time.sleep(0.5)  # every one of them has reached the gateway
            timings = []
            for _ in range(3):
                timings.append(answers_quickly(mesh, "/api/products"))
                timings.append(answers_quickly(mesh, "/api/users/me", headers))
                time.sleep(0.5)
            answered = [future.result() for future in waiting]
        assert {r.status_code for r in answered} == {503}, [r.text for r in answered]
        refused = [r for r in answered if "busy or down" in r.json()["message"]]
        assert refused, "no call was refused at once: every one waited for the timeout"
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        print(f"REST while 32 calls wait on a stopped service: max {max(timings):.3f} s")
    finally:
        started = mesh.supervisorctl("start", "orders")
        assert started.returncode == 0, started.stdout + started.stderr
        mesh.wait_running("orders")

    def orders_answer() -> bool:
        return requests.get(mesh.url("/api/orders"), headers=headers, timeout=10).status_code == 200

    mesh.eventually(orders_answer, timeout=60, interval=1, what="GET /api/orders answering again")


def test_a_users_streams_past_the_cap_are_refused_and_rest_still_answers(mesh: Mesh) -> None:
    wait_streams_closed(mesh)
    user = mesh.register()
    token = mesh.login(user)["access_token"]
    opened = [open_stream(mesh, token) for _ in range(SSE_MAX_PER_USER)]
    assert [status for _, status, _ in opened] == [200] * SSE_MAX_PER_USER, (user, opened)

    _, status, headers = open_stream(mesh, token)
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    other = mesh.login(mesh.register())["access_token"]
    other_stream, other_status, _ = open_stream(mesh, other)  # another user is not refused
    assert other_status == 200
    answers_quickly(mesh, "/api/users/me", bearer(token))

    for connection, _, _ in opened[1:]:
        connection.close()
    other_stream.close()

    # A closed stream's slot comes back once the gateway notices, at its next keepalives.
    def reopened() -> http.client.HTTPConnection | None:
        connection, status, _ = open_stream(mesh, token)
        return connection if status == 200 else None

    again = mesh.eventually(reopened, timeout=60, interval=2, what="a slot freed by a close")
    again.close()
    opened[0][0].close()
    wait_streams_closed(mesh)


def test_streams_past_the_process_total_get_503_and_rest_still_answers(mesh: Mesh) -> None:
    wait_streams_closed(mesh)
    tokens = [mesh.login(mesh.register())["access_token"] for _ in range(14)]
    held: list[http.client.HTTPConnection] = []
    refusals: list[dict[str, str]] = []
    in_a_row = 0
    try:
        for attempt in range(40):
            token = tokens[attempt % len(tokens)]  # 3 attempts a user at most: never a 429
            connection, status, headers = open_stream(mesh, token)
            if status == 200:
                held.append(connection)
                in_a_row = 0
                continue
            assert status == 503, (status, headers)
            refusals.append(headers)
            in_a_row += 1
            if in_a_row == 6:  # whichever worker takes the connection, it is full
                break
        assert in_a_row == 6, f"{len(held)} streams open, yet no worker refused six in a row"
        assert len(held) <= WORKERS * SSE_MAX_TOTAL
        assert all(int(h["retry-after"]) >= 1 for h in refusals)
        # Every worker holds its maximum of streams, and still has threads for REST.
        timings = [answers_quickly(mesh, "/api/products") for _ in range(4)]
        print(f"{len(held)} streams open; REST: max {max(timings):.3f} s")
    finally:
        for connection in held:
            connection.close()
    wait_streams_closed(mesh)
