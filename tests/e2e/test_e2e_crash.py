"""Crashes caught at the two moments that matter, with the faults of ``mesh.faults``.

1. notifications has applied an event (its document stored, its e-mail queued) and still
   holds the message unacked: a pause fault holds it there and the test SIGKILLs it.
   RabbitMQ gives the message to the restarted process, which finds the work done: one
   document, one e-mail.
2. users has committed a registration with its outbox row and dies (a crash fault,
   ``os._exit``) before its relay runs: the restarted relay publishes the event, once.

Each test arms its fault just before the action (tests/e2e/crash.py explains how a fault is
armed in the shared e2e mesh) and checks, from the ``.fired`` record, that the fault held the
test's own event in the process supervisord ran, and that supervisord restarted it under a
new pid.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mesh import topology
from tests.e2e import crash
from tests.e2e.conftest import PASSWORD, Mesh, eventually

pytestmark = pytest.mark.e2e

WELCOME_QUEUE = topology.handler_queue_name(
    "users", "user.registered", "notifications", "on_user_registered"
)


def test_notifications_killed_holding_an_applied_event_applies_it_once(
    mesh: Mesh, rabbitmqctl: list[str] | None
) -> None:
    point = "notifications.after_effect"
    crash.arm(mesh, point, {"type": "user.registered"})
    try:
        user = mesh.register()
        held = crash.wait_fired(mesh, point)
    finally:
        crash.disarm(mesh, point)
    assert held.detail["user_id"] == user.id, held  # our event, not a stray one
    assert crash.program_pid(mesh, "notifications") == held.pid

    # Caught in the act: the effect is applied and the message is not acked.
    (key,) = mesh.notification_keys(user.id)
    if rabbitmqctl:
        assert crash.queue_counts(mesh, rabbitmqctl, WELCOME_QUEUE)[WELCOME_QUEUE] == (0, 1)

    crash.sigkill(held.pid)
    crash.wait_restarted(mesh, "notifications", held.pid)

    crash.assert_redelivered(mesh, key)
    mesh.assert_one_notification(user.id)  # one document, one e-mail
    if rabbitmqctl:
        assert crash.queue_counts(mesh, rabbitmqctl, WELCOME_QUEUE)[WELCOME_QUEUE] == (0, 0)


def test_users_killed_between_commit_and_relay_publishes_the_event_once(mesh: Mesh) -> None:
    point = "users.after_commit"
    pid = crash.program_pid(mesh, "users")
    email = f"crash-{uuid.uuid4().hex[:10]}@example.com"
    with crash.event_tap(mesh, "users", "user.registered") as tap:
        crash.arm(mesh, point)
        # The answer comes only once users is back (the redelivered RPC finds the e-mail
        # taken), by when the new process has relayed the row: look at the tap the moment
        # the fault fires, while the request still waits.
        with ThreadPoolExecutor(1) as pool:
            answering = pool.submit(
                requests.post,
                mesh.url("/api/auth/register"),
                json={"email": email, "password": PASSWORD, "name": "Crash Tester"},
                timeout=60,
            )
            try:
                died = crash.wait_fired(mesh, point)
                published_before_the_restart = list(tap.matching())
            finally:
                crash.disarm(mesh, point)
            answer = answering.result()
        assert died.pid == pid
        assert answer.status_code != 201, answer.text
        crash.wait_restarted(mesh, "users", pid)

        user_id = registered_id(mesh, email)
        assert not [e for e in published_before_the_restart if e.get("user_id") == user_id]
        eventually(
            lambda: tap.matching(user_id=user_id), what=f"user.registered for {user_id} published"
        )
        mesh.assert_one_notification(user_id)  # also waits out a second publication
        assert len(tap.matching(user_id=user_id)) == 1, tap.seen


def registered_id(mesh: Mesh, email: str) -> int:
    """The id of the user ``email`` (logging in, once users answers again)."""

    def log_in() -> list[requests.Response]:  # a list: a Response is false when not ok
        answer = requests.post(
            mesh.url("/api/auth/login"), json={"email": email, "password": PASSWORD}, timeout=15
        )
        return [answer] if answer.status_code != 503 else []  # 503: users still starting

    (answer,) = eventually(log_in, timeout=60, interval=1, what="users answering again")
    assert answer.status_code == 200, answer.text
    me = requests.get(
        mesh.url("/api/users/me"),
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        timeout=15,
    )
    assert me.status_code == 200, me.text
    return int(me.json()["id"])
