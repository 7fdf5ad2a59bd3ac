"""E-mail end to end over SMTP: STARTTLS and login, dead-lettering while SMTP is down, replay.

The e2e mesh sends its e-mail to ``smtp_server`` (tests/support/smtp_server.py), which
requires STARTTLS (a self-signed certificate) and a login, and records every message it
accepts, so a duplicate would show. The mesh's e-mail retries are short (conftest: 2 retries,
0.2-1 s apart), so an e-mail that cannot be sent reaches ``email.XQ`` within seconds.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import Mesh, User, eventually
from tests.support.smtp_server import LOGIN, RecordingSmtpServer

pytestmark = pytest.mark.e2e


def _smtp(mesh: Mesh) -> RecordingSmtpServer:
    assert mesh.smtp is not None
    return mesh.smtp


def parked_emails(mesh: Mesh) -> int:
    """How many messages ``mesh dlq list`` shows in ``email.XQ``."""
    listed = mesh.run(mesh.bin / "mesh", "dlq", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    found = re.search(r"^\s*(\d+)\s+email\.XQ\b", listed.stdout, re.MULTILINE)
    assert found, listed.stdout
    return int(found.group(1))


def test_the_welcome_email_goes_over_starttls_with_a_login(mesh: Mesh, user: User) -> None:
    smtp = _smtp(mesh)
    eventually(lambda: smtp.to(user.email), timeout=30, what=f"an e-mail to {user.email}")
    (key,) = mesh.notification_keys(user.id)
    time.sleep(1.5)  # a duplicate would arrive within this
    (mail,) = smtp.to(user.email)
    assert mail.tls, "the message was sent before STARTTLS"
    assert mail.login == LOGIN
    assert mail.rcpt_tos == (user.email,)
    assert mail.message["Message-ID"] == f"<{key}@mesh>"
    assert user.name in mail.message.get_content()


def test_an_email_dead_lettered_while_smtp_is_down_is_sent_once_after_replay(
    mesh: Mesh,
) -> None:
    smtp = _smtp(mesh)
    parked_before = parked_emails(mesh)
    smtp.stop()
    try:
        user = mesh.register()
        eventually(
            lambda: parked_emails(mesh) > parked_before,
            timeout=60,
            interval=0.5,
            what="the welcome e-mail parked in email.XQ after its retries",
        )
        (key,) = mesh.notification_keys(user.id)
    finally:
        smtp.start()

    time.sleep(2)  # parked, not retried: SMTP is back, yet nothing comes without a replay
    assert mesh.emails_for(key) == []

    replayed = mesh.run(mesh.bin / "mesh", "dlq", "replay", "email")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert re.search(r"replayed [1-9]\d* message", replayed.stdout), replayed.stdout

    mesh.assert_one_notification(user.id)  # one document, and exactly one e-mail for it
    (mail,) = mesh.emails_for(key)
    assert mail.tls and mail.rcpt_tos == (user.email,)
    assert parked_emails(mesh) == 0
