"""The e-mail actor's SMTP client verifies the server's certificate (STARTTLS, real server)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.notifications.actors import send_smtp
from tests.support.smtp_server import RecordingSmtpServer


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "mesh@example.com", "ada@example.com", "Hi"
    mail.set_content("Hello")
    return mail


def test_a_server_whose_certificate_is_not_trusted_gets_nothing(
    smtp: RecordingSmtpServer,
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        send_smtp(smtp.url, message())
    assert smtp.messages() == []


def test_a_server_signed_by_the_configured_ca_gets_the_message(
    smtp: RecordingSmtpServer,
) -> None:
    send_smtp(smtp.url, message(), smtp.ca_file)
    [received] = smtp.messages()
    assert received.tls and received.rcpt_tos == ("ada@example.com",)
