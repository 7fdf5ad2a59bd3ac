"""user.registered fans out: MongoDB notification log, Redis pub/sub mirror, welcome e-mail."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
import requests

pytestmark = pytest.mark.e2e


def test_notification_logged_exactly_once(mesh, user, access_token):
    mesh.assert_one_notification(user.id)

    resp = requests.get(
        mesh.url("/api/notifications"),
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    items = body["items"] if isinstance(body, dict) else body
    assert any(
        item["type"] == "user.registered" and item["user_id"] == user.id for item in items
    ), body


def test_mirror_publishes_to_redis(mesh):
    client = redis.Redis.from_url(mesh.redis_url)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("user.registered")
        confirmed = pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe", confirmed

        user = mesh.register()

        def received():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                return None
            payload = json.loads(message["data"])
            return payload if payload.get("user_id") == user.id else None

        payload = mesh.eventually(
            received, timeout=20, interval=0, what=f"user.registered for {user.id} on Redis"
        )
        uuid.UUID(str(payload["event_id"]))
    finally:
        pubsub.close()
        client.close()


def test_welcome_mail_sent_once(mesh, user):
    # The test SMTP server keeps every message: a second delivery would be a second entry.
    mesh.eventually(lambda: mesh.smtp.to(user.email), timeout=30, what=f"an e-mail to {user.email}")
    time.sleep(1.5)  # a duplicate would arrive within this
    (mail,) = mesh.smtp.to(user.email)
    assert mail.tls, "sent before STARTTLS"
    assert mail.message["To"] == user.email


def test_nameko_shell_reaches_users(mesh, user):
    result = mesh.run(
        mesh.bin / "nameko",
        "shell",
        "--config",
        "mesh/nameko.yaml",
        input=f"print(n.rpc.users.get_user({user.id}))\n",
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert user.email in result.stdout, result.stdout + result.stderr
