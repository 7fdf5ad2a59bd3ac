"""An event published while its consumer is down is delivered, once, when it comes back."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e


def test_event_survives_a_stopped_consumer(mesh):
    stopped = mesh.supervisorctl("stop", "notifications")
    assert "stopped" in stopped.stdout or "not running" in stopped.stdout, stopped.stdout
    try:
        user = mesh.register()  # committed and published while nothing consumes

        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert mesh.notification_count(user.id) == 0
            time.sleep(0.25)
    finally:
        started = mesh.supervisorctl("start", "notifications")
        assert started.returncode == 0, started.stdout + started.stderr
        mesh.wait_running("notifications")

    mesh.assert_one_notification(user.id)
