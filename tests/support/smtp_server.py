"""An SMTP server for tests that records every message it accepts (aiosmtpd, in a thread).

    server = RecordingSmtpServer(cert_dir)   # 127.0.0.1, a free port, STARTTLS and AUTH required
    server.start()
    server.url                               # smtp://user:pass@127.0.0.1:PORT/?starttls=1
    server.to("ada@example.com")             # every message received for her, duplicates kept
    server.stop(); server.start()            # down, then up again on the same port

Nothing is keyed or deduplicated: a message sent twice is recorded twice, which is what
lets a test see a duplicate. STARTTLS uses a self-signed certificate made with openssl;
a client must upgrade before it may log in, and log in before it may send.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOGIN = "mesh"
PASSWORD = "smtp-test-password"


@dataclass(frozen=True)
class Received:
    """One accepted message, as it came over the wire."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_context(cert_dir: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make the test SMTP server's certificate")
    cert, key = cert_dir / "smtp-cert.pem", cert_dir / "smtp-key.pem"
    request = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class _Recorder:
    """The aiosmtpd handler and authenticator: checks the login, keeps every message."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (LOGIN, PASSWORD)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or envelope.content),
            tls=session.ssl is not None,
            login=session.auth_data if session.authenticated else None,
        )
        with self.lock:
            self.received.append(received)
        return "250 OK"


class RecordingSmtpServer:
    """STARTTLS and AUTH required; records every message; can go down and come back."""

    def __init__(self, cert_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.tls_context = self_signed_context(cert_dir)
        # The mesh verifies the server's certificate: point SMTP_CA_FILE here.
        self.ca_file = cert_dir / "smtp-cert.pem"
        self.recorder = _Recorder()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{LOGIN}:{PASSWORD}@127.0.0.1:{self.port}/?starttls=1"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = Controller(
            self.recorder,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.tls_context,
            require_starttls=True,
            authenticator=self.recorder,
            auth_required=True,
            auth_require_tls=True,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: a client now gets "connection refused"."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Received]:
        with self.recorder.lock:
            return list(self.recorder.received)

    def to(self, address: str) -> list[Received]:
        """Every message received for ``address``, in arrival order, duplicates kept."""
        return [m for m in self.messages() if address in m.rcpt_tos]
