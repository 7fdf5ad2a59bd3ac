"""A user's notifications through the whole mesh: the e-mail's delivery status, the user's
live Redis Stream, paging, and an administrator's view of one user's notifications."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import requests

from contracts.notifications import user_stream_key
from tests.e2e.conftest import Mesh, User

pytestmark = pytest.mark.e2e


def get(mesh: Mesh, path: str, token: str) -> requests.Response:
    return requests.get(mesh.url(path), headers={"Authorization": f"Bearer {token}"}, timeout=15)


def notifications(mesh: Mesh, token: str, query: str = "") -> dict[str, Any]:
    resp = get(mesh, f"/api/notifications{query}", token)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_the_welcome_is_streamed_then_shown_sent(mesh: Mesh, user: User, access_token: str):
    def sent() -> dict[str, Any] | None:
        items = notifications(mesh, access_token)["items"]
        return items[0] if items and items[0]["email_status"] == "sent" else None

    welcome = mesh.eventually(sent, timeout=30, what="the welcome e-mail shown as sent")
    assert welcome["sent_at"] is not None and welcome["type"] == "user.registered"

    client = redis.Redis.from_url(mesh.redis_url, decode_responses=True)
    try:
        entries = client.xrange(user_stream_key(user.id))
    finally:
        client.close()
    [(_, fields)] = entries
    streamed = json.loads(fields["notification"])
    assert streamed["id"] == welcome["id"] and streamed["user_id"] == user.id
    assert streamed["email_status"] == "queued"  # as it was when stored
    assert user.email not in fields["notification"]


def test_pages_and_the_admins_view(mesh: Mesh, user: User, access_token: str):
    mesh.eventually(
        lambda: notifications(mesh, access_token)["items"], timeout=30, what="the welcome"
    )
    first = notifications(mesh, access_token, "?limit=1")
    assert len(first["items"]) == 1 and first["next_before"] is None  # only the welcome
    missing = get(mesh, f"/api/notifications?before={'0' * 24}", access_token)
    assert missing.status_code == 404, missing.text

    admin = mesh.admin_token()
    resp = get(mesh, f"/api/users/{user.id}/notifications", admin)
    assert resp.status_code == 200, resp.text
    assert [n["id"] for n in resp.json()["items"]] == [n["id"] for n in first["items"]]
    assert get(mesh, f"/api/users/{user.id}/notifications", access_token).status_code == 403
    assert get(mesh, "/api/users/999999/notifications", admin).status_code == 404


def test_an_email_given_up_on_shows_failed_then_sent_after_a_replay(mesh: Mesh):
    """SMTP down: Dramatiq's retries (2, short, in the e2e mesh) are spent, the e-mail is
    parked in email.XQ and the API says ``failed``; replayed with SMTP back, ``sent``."""
    assert mesh.smtp is not None
    mesh.smtp.stop()
    try:
        user = mesh.register()
        token = mesh.login(user)["access_token"]

        def status() -> str | None:
            items = notifications(mesh, token)["items"]
            return items[0]["email_status"] if items else None

        mesh.eventually(lambda: status() == "failed", timeout=60, what="the e-mail failed")
    finally:
        mesh.smtp.start()
    replayed = mesh.run(mesh.bin / "mesh", "dlq", "replay", "email")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    mesh.eventually(lambda: status() == "sent", timeout=30, what="the replayed e-mail sent")
    [shown] = notifications(mesh, token)["items"]
    assert shown["sent_at"] is not None
