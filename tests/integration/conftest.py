"""Real RabbitMQ (own vhost), Redis, the embedded MongoDB server and SQLite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from pymongo import MongoClient

from mesh.settings import Settings, get_settings
from tests.conftest import require

# IT_VHOST: a vhost of your own when several test runs share one broker.
VHOST = os.environ.get("IT_VHOST", "mesh_it")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_fresh_vhost() -> bool:
    """Recreate our vhost, so a developer's running mesh never shares our queues."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    subprocess.run([ctl, "-q", "delete_vhost", VHOST], capture_output=True, check=False)
    subprocess.run([ctl, "-q", "add_vhost", VHOST], capture_output=True, check=True)
    grant = [ctl, "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]
    subprocess.run(grant, capture_output=True, check=True)
    return True


@pytest.fixture(scope="session")
def it_amqp_uri(amqp_uri: str) -> str:
    """The broker URI on a fresh vhost (or as given, where rabbitmqctl is not at hand)."""
    if not make_fresh_vhost():
        return amqp_uri
    return urlsplit(amqp_uri)._replace(path=f"/{VHOST}").geturl()


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The nx-27017 server on a free port, as supervisord runs it."""
    folder = tmp_path_factory.mktemp("mongo")
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("nx-27017")),
            "--data-dir",
            str(folder),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            str(folder / "server.log"),
            "--pid-file",
            str(folder / "server.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"mongodb://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while True:
        try:
            MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the embedded MongoDB server did not start")
            time.sleep(0.2)
    yield uri
    server.terminate()
    server.wait(10)


@pytest.fixture
def settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    it_amqp_uri: str,
    redis_url: str,
    mongo_uri: str,
) -> Iterator[Settings]:
    """Settings pointing every store at the test servers, with a fresh Mongo database."""
    require("Redis", lambda: bool(redis.Redis.from_url(redis_url).ping()))
    env = {
        "MESH_VAR_DIR": str(tmp_path),
        "AMQP_URI": it_amqp_uri,
        "REDIS_URL": redis_url,
        "MONGO_URL": mongo_uri,
        "MONGO_DB": f"it_{uuid.uuid4().hex[:8]}",
        "EVENT_MAX_ATTEMPTS": "3",
        "EVENT_RETRY_BASE_MS": "200",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
