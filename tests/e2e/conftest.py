"""The real mesh under supervisord, isolated from a developer's running one.

The session fixture ``mesh`` starts supervisord.conf like ``make run`` does, but with its own
var dir (a temp dir: logs, socket, SQLite, embedded MongoDB data, mail), its own ports
(gateway 8123, embedded MongoDB 27127), its own Redis db (14, flushed) and its own RabbitMQ
vhost (``mesh_e2e``, created afresh), so nothing it does reaches a mesh started by ``make run``.
Its e-mail goes over SMTP with STARTTLS to ``smtp_server``, which records every message (a
duplicate shows), with retries short enough to dead-letter within seconds. Its spans go over
OTLP/HTTP to ``otlp_receiver``, which records every span (tracing is on, exported within a
fraction of a second). ``MESH_FAULTS`` lists the crash points (``FAULTS``); each stays inert
until a test arms it (tests/e2e/crash.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from pymongo import MongoClient

from mesh import orphans
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.smtp_server import Received, RecordingSmtpServer

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
CONF = REPO / "supervisord.conf"

# Overridable so that two suites can run side by side on one machine without sharing state.
GATEWAY_PORT = int(os.environ.get("E2E_GATEWAY_PORT", "8123"))
MONGO_PORT = int(os.environ.get("E2E_MONGO_PORT", "27127"))
REDIS_DB = int(os.environ.get("E2E_REDIS_DB", "14"))
VHOST = os.environ.get("E2E_VHOST", "mesh_e2e")
READY_TIMEOUT = int(os.environ.get("E2E_READY_TIMEOUT", "120"))  # more on a busy machine
PASSWORD = "correct-horse-battery-9"  # meets the password policy
# The crash points the e2e tests may use (mesh.faults); each fires only when a test arms it.
FAULTS = "notifications.after_effect=pause:120,users.after_commit=crash"


@dataclass(frozen=True)
class Isolation:
    """What keeps one e2e mesh apart from another: ports, Redis db, RabbitMQ vhost."""

    gateway_port: int
    mongo_port: int
    redis_db: int
    vhost: str


ISOLATION = Isolation(GATEWAY_PORT, MONGO_PORT, REDIS_DB, VHOST)

# Variables of a developer's shell that would point the e2e mesh at shared state.
# The e2e mesh runs on its embedded defaults: no server or model the caller's shell points at.
_DROP = (
    "MONGO_URL",
    "SMTP_URL",
    "JWT_SECRET",
    "MESH_ENV",
    "QDRANT_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "EMBEDDINGS_BASE_URL",
)


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def eventually(
    check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.25, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


@dataclass
class User:
    id: int
    email: str
    name: str
    password: str = PASSWORD


@dataclass
class Mesh:
    """A running mesh: its URL, environment, var dir and the handles tests need."""

    base_url: str
    env: dict[str, str]
    var_dir: Path
    mongo_uri: str
    mongo_db: str
    redis_url: str
    notes: list[str] = field(default_factory=list)
    smtp: RecordingSmtpServer | None = None  # where the mesh's e-mail goes
    traces: OtlpReceiver | None = None  # where the mesh's spans go
    bin: Path = VENV_BIN
    eventually = staticmethod(eventually)

    # -- processes

    def run(
        self,
        *cmd: str | Path,
        input: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command from the repo root with the mesh's environment (and ``env``)."""
        return subprocess.run(
            [str(c) for c in cmd],
            cwd=REPO,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def supervisorctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(VENV_BIN / "supervisorctl", "-c", CONF, *args, timeout=timeout)

    def wait_running(self, program: str, timeout: float = 60) -> None:
        def running() -> bool:
            return "RUNNING" in self.supervisorctl("status", program).stdout

        eventually(running, timeout=timeout, interval=0.5, what=f"{program} RUNNING")

    # -- HTTP

    def url(self, path: str) -> str:
        return self.base_url + path

    def register(self, email: str | None = None, name: str = "E2E Tester") -> User:
        email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        resp = requests.post(
            self.url("/api/auth/register"),
            json={"email": email, "password": PASSWORD, "name": name},
            timeout=15,
        )
        assert resp.status_code == 201, (resp.status_code, resp.text)
        body = resp.json()
        return User(id=body["id"], email=body["email"], name=body["name"])

    def admin_token(self) -> str:
        """An access token of a new administrator, made like ``make admin`` does."""
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        made = self.run(
            VENV_BIN / "mesh",
            "create-admin",
            "--email",
            email,
            env={"MESH_ADMIN_PASSWORD": PASSWORD},
        )
        assert made.returncode == 0, made.stdout + made.stderr
        token: str = self.login(User(id=0, email=email, name="Admin"))["access_token"]
        return token

    def login(self, user: User) -> dict[str, Any]:
        resp = requests.post(
            self.url("/api/auth/login"),
            json={"email": user.email, "password": user.password},
            timeout=15,
        )
        assert resp.status_code == 200, (resp.status_code, resp.text)
        tokens: dict[str, Any] = resp.json()
        return tokens

    # -- stores

    def assert_one_notification(
        self, user_id: int, event_type: str = "user.registered", timeout: float = 30
    ) -> None:
        """Wait for the user's notification of this type and its e-mail; check each stays one.

        The document count alone cannot show a duplicate (its key is unique in MongoDB): the
        SMTP server keeps every message it receives, so a second delivery shows there.
        """
        eventually(
            lambda: self.notification_count(user_id, event_type) >= 1,
            timeout=timeout,
            what=f"a {event_type} notification for user {user_id} in MongoDB",
        )
        (key,) = self.notification_keys(user_id, event_type)
        if self.smtp is not None:
            eventually(lambda: self.emails_for(key), timeout=timeout, what=f"the e-mail of {key}")
        time.sleep(1.5)  # a duplicate would arrive within this
        assert self.notification_count(user_id, event_type) == 1
        if self.smtp is not None:
            assert len(self.emails_for(key)) == 1, f"{key} was e-mailed more than once"

    def emails_for(self, key: str) -> list[Received]:
        """Every e-mail the SMTP server received for notification ``key``, duplicates kept."""
        assert self.smtp is not None, "the mesh has no test SMTP server"
        return [m for m in self.smtp.messages() if m.message["Message-ID"] == f"<{key}@mesh>"]

    def notification_keys(self, user_id: int, event_type: str = "user.registered") -> list[str]:
        return [doc["key"] for doc in self._notifications(user_id, event_type, {"key": 1})]

    def notification_count(self, user_id: int, event_type: str = "user.registered") -> int:
        # A list, not count_documents: the embedded server answers a count with a full scan.
        return len(self._notifications(user_id, event_type, {"_id": 1}))

    def _notifications(
        self, user_id: int, event_type: str, fields: dict[str, int]
    ) -> list[dict[str, Any]]:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.mongo_uri, serverSelectionTimeoutMS=5000
        )
        try:
            coll = client[self.mongo_db]["notifications"]
            return list(coll.find({"userId": user_id, "type": event_type}, fields))
        finally:
            client.close()


# ------------------------------------------------------------------ start-up


def _e2e_amqp_uri(
    base_uri: str, notes: list[str], ctl: list[str] | None, vhost: str = VHOST
) -> str:
    """A fresh ``vhost`` on the same broker, or "/" when rabbitmqctl is unavailable."""
    parts = urlsplit(base_uri)
    user = parts.username or "guest"
    if ctl:
        # Deleted first, so that messages a previous run left in its queues never reach this one.
        subprocess.run(
            [*ctl, "-q", "delete_vhost", vhost], capture_output=True, timeout=60, check=False
        )
        steps = (
            [*ctl, "-q", "add_vhost", vhost],
            [*ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
        )
        results = [
            subprocess.run(s, capture_output=True, text=True, timeout=60, check=False)
            for s in steps
        ]
        if all(r.returncode == 0 for r in results):
            return urlunsplit(parts._replace(path=f"/{vhost}"))
        errors = "; ".join(r.stderr.strip() for r in results if r.returncode)
        notes.append(f"rabbitmqctl failed ({errors}): the e2e mesh uses the default vhost '/'")
    else:
        notes.append("rabbitmqctl not found: the e2e mesh uses the default vhost '/'")
    return urlunsplit(parts._replace(path="/"))


def _e2e_redis_url(base_url: str, db: int = REDIS_DB) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _log_tails(var_dir: Path, lines: int = 40) -> str:
    chunks = []
    for log in sorted((var_dir / "log").glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        chunks.append(f"----- {log.name} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(chunks) or f"(no logs in {var_dir / 'log'})"


def _read_pid(var_dir: Path) -> int | None:
    try:
        return int((var_dir / "run" / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int | None, timeout: float) -> bool:
    """True once process ``pid`` has exited (or there was none)."""
    deadline = time.monotonic() + timeout
    while pid is not None and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.25)
    return pid is None


def _shutdown(var_dir: Path, env: dict[str, str]) -> None:
    """Stop every program at once, then supervisorctl shutdown and wait for supervisord to
    exit; SIGTERM it if it hangs. (shutdown alone stops one program after another, in order of
    priority: half a minute and more, which a mesh thrown away has no use for.)"""
    pid = _read_pid(var_dir)

    def ctl(command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [VENV_BIN / "supervisorctl", "-c", CONF, *command.split()],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=90,
            check=False,
        )

    ctl("stop all")
    done = ctl("shutdown")
    if done.returncode != 0:
        return  # no supervisord answers on this socket: nothing of ours to stop
    if not _wait_gone(pid, timeout=120) and pid is not None:
        os.kill(pid, signal.SIGTERM)  # the supervisord that just answered, by its pid
        _wait_gone(pid, timeout=30)


def _shutdown_stale(tmp_root: Path, current: Path) -> None:
    """Shut down an e2e mesh a killed earlier run left behind (it would hold our ports); not
    one of this run's (under ``current``), which may hold other ports."""
    for sock in tmp_root.glob("pytest-*/mesh*/run/supervisor.sock"):
        var_dir = sock.parent.parent
        if var_dir.is_relative_to(current):
            continue
        env = {
            **os.environ,
            "MESH_VAR_DIR": str(var_dir),
            "MESH_EMBEDDED_MONGO": "true",
            "MONGO_EMBEDDED_PORT": str(MONGO_PORT),
        }
        _shutdown(var_dir, env)


@pytest.fixture(scope="session")
def rabbitmqctl() -> list[str] | None:
    """The rabbitmqctl command (with its node options) of the broker behind ``amqp_uri``."""
    ctl = shutil.which("rabbitmqctl")
    return [ctl] if ctl else None


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingSmtpServer]:
    """The mesh's SMTP server (STARTTLS and AUTH required): records every e-mail it gets."""
    server = RecordingSmtpServer(tmp_path_factory.mktemp("smtp"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """The mesh's trace collector: records every span the mesh's processes export."""
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def mesh(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    amqp_uri: str,
    redis_url: str,
    rabbitmqctl: list[str] | None,
    smtp_server: RecordingSmtpServer,
    otlp_receiver: OtlpReceiver,
) -> Iterator[Mesh]:
    """Start the whole mesh under supervisord in a temp var dir; shut it down afterwards."""
    with running_mesh(
        request,
        tmp_path_factory,
        amqp_uri,
        redis_url,
        rabbitmqctl,
        smtp_server,
        ISOLATION,
        traces=otlp_receiver,
    ) as m:
        yield m


@contextmanager
def running_mesh(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    amqp_uri: str,
    redis_url: str,
    rabbitmqctl: list[str] | None,
    smtp_server: RecordingSmtpServer,
    place: Isolation,
    extra_env: dict[str, str] | None = None,
    traces: OtlpReceiver | None = None,
) -> Iterator[Mesh]:
    """A mesh at ``place``, its environment the suite's with ``extra_env`` on top (one replica
    of each program on SQLite unless it says otherwise), its spans exported to ``traces`` if
    given; shut down when the block ends."""
    notes: list[str] = []
    if _answers(place.gateway_port) or _answers(place.mongo_port):
        current = tmp_path_factory.getbasetemp()
        _shutdown_stale(current.parent, current)
    for port in (place.gateway_port, place.mongo_port):
        if _answers(port):
            pytest.fail(f"port {port} is taken: the e2e mesh needs 127.0.0.1:{port} free")

    var_dir = tmp_path_factory.mktemp("mesh")
    for sub in ("log", "run", "mongo", "mail"):
        (var_dir / sub).mkdir()

    e2e_amqp = _e2e_amqp_uri(amqp_uri, notes, rabbitmqctl, place.vhost)
    e2e_redis = _e2e_redis_url(redis_url, place.redis_db)
    client = redis.Redis.from_url(e2e_redis)
    client.flushdb()
    client.close()

    env = {
        k: v for k, v in os.environ.items() if k not in _DROP and not k.endswith("_DATABASE_URL")
    }
    env.update(
        MESH_ENV="development",
        MESH_VAR_DIR=str(var_dir),
        MESH_EMBEDDED_MONGO="true",
        MONGO_EMBEDDED_PORT=str(place.mongo_port),
        MESH_REPLICAS="1",
        MESH_LAYOUT="single",
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(place.gateway_port),
        AMQP_URI=e2e_amqp,
        REDIS_URL=e2e_redis,
        LOGIN_RATE_IP="1000/minute",
        LOGIN_RATE_ACCOUNT="1000/minute",
        LOGIN_RATE_ACCOUNT_TOTAL="1000/minute",
        REGISTER_RATE_IP="1000/minute",
        API_RATE_IP="100000/minute",
        PYTHONUNBUFFERED="1",
        SMTP_URL=smtp_server.url,
        SMTP_CA_FILE=str(smtp_server.ca_file),
        EMAIL_MAX_RETRIES="2",  # an e-mail is dead-lettered within seconds of SMTP going down
        EMAIL_RETRY_MIN_MS="200",
        EMAIL_RETRY_MAX_MS="1000",
        MESH_FAULTS=FAULTS,
    )
    if traces is not None:
        env.update(
            TRACING_ENABLED="true",
            OTEL_EXPORTER_OTLP_ENDPOINT=traces.url,
            OTEL_BSP_SCHEDULE_DELAY="200",  # ms: spans reach ``traces`` soon after they end
        )
    env.update(extra_env or {})
    m = Mesh(
        base_url=f"http://127.0.0.1:{place.gateway_port}",
        env=env,
        var_dir=var_dir,
        mongo_uri=f"mongodb://127.0.0.1:{place.mongo_port}/",
        mongo_db=env.get("MONGO_DB", "mesh"),
        redis_url=e2e_redis,
        notes=notes,
        smtp=smtp_server,
        traces=traces,
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for note in notes:
        if reporter is not None:
            reporter.write_line(f"e2e: {note}")

    started = m.run(VENV_BIN / "supervisord", "-c", CONF, timeout=60)
    if started.returncode != 0:
        pytest.fail(
            f"supervisord did not start (exit {started.returncode}):\n"
            f"{started.stdout}{started.stderr}\n{_log_tails(var_dir)}",
            pytrace=False,
        )
    try:
        ready = m.run(
            VENV_BIN / "mesh",
            "wait-ready",
            "--timeout",
            str(READY_TIMEOUT),
            timeout=READY_TIMEOUT + 30,
        )
        if ready.returncode != 0:
            status = m.supervisorctl("status").stdout
            pytest.fail(
                f"the e2e mesh did not become ready (var dir {var_dir}):\n"
                f"{ready.stdout}{ready.stderr}\n{status}\n{_log_tails(var_dir)}",
                pytrace=False,
            )
        yield m
    finally:
        _shutdown(var_dir, env)
        # Nothing may outlive supervisord (mesh.orphans): stop it, then say so.
        left = orphans.reap(var_dir)
        if left:
            pytest.fail(f"processes outlived the mesh: {left}", pytrace=False)


@pytest.fixture
def user(mesh: Mesh) -> User:
    """A freshly registered user."""
    return mesh.register()


@pytest.fixture
def access_token(mesh: Mesh, user: User) -> str:
    token: str = mesh.login(user)["access_token"]
    return token
