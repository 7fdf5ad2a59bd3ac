"""The admin's Server-Sent Events stream relays domain events from Redis pub/sub."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import Mesh

pytestmark = pytest.mark.e2e


def open_stream(mesh: Mesh, token: str) -> http.client.HTTPResponse:
    """http.client, not requests: its line reads return each SSE line as it arrives."""
    parts = urlsplit(mesh.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=20)
    headers = {"Authorization": f"Bearer {token}"}
    connection.request("GET", "/api/events/stream?types=user.registered", headers=headers)
    return connection.getresponse()


def test_an_admin_sees_a_registration_on_the_stream(mesh: Mesh) -> None:
    stream = open_stream(mesh, mesh.admin_token())
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    events: list[dict[str, Any]] = []
    wanted: list[int] = []
    found = threading.Event()

    def listen() -> None:
        # Other registrations (the admin's own; another mesh on this Redis, whose pub/sub
        # channels are not per database) may come first.
        try:
            while line := stream.readline():
                if line.startswith(b"data: "):
                    events.append(json.loads(line.removeprefix(b"data: ")))
                    if wanted and events[-1].get("user_id") in wanted:
                        found.set()
                        return
        except (AttributeError, OSError, ValueError):
            return  # the test closed the stream under this read: it is done with it

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    user = mesh.register()
    wanted.append(user.id)
    if not any(e.get("user_id") == user.id for e in events):
        assert found.wait(15), f"no event for user {user.id} on the stream: {events}"
    mine = [e for e in events if e.get("user_id") == user.id]
    assert len(mine) == 1 and mine[0]["type"] == "user.registered"
    stream.close()
    listener.join(5)

    plain = mesh.login(mesh.register())["access_token"]
    denied = requests.get(
        mesh.url("/api/events/stream"), headers={"Authorization": f"Bearer {plain}"}, timeout=10
    )
    assert denied.status_code == 403
