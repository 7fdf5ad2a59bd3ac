"""An event published while its consumer is stopped waits in its durable queue.

This proves durable queues, and that the publisher declares its consumers' queues: it does
not kill a consumer holding an unacked message. That is test_e2e_crash.py, which SIGKILLs
notifications inside its handler, after the effect and before the ack.
"""

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

    mesh.assert_one_notification(user.id)  # one document, and one e-mail over SMTP
