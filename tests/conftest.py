"""Shared fixtures: a service that does not answer skips the test locally and fails it in CI."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def require(service_name: str, check: Callable[[], bool]) -> None:
    """Skip the calling test when ``check()`` is false, or fail it when CI=true."""
    if check():
        return
    message = f"{service_name} does not answer (README.md says how to start it)"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def amqp_uri() -> str:
    """The RabbitMQ the tests use (AMQP_URI or the local default), checked to answer."""
    uri = os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)
    host, port = address(uri, 5672)
    require(f"RabbitMQ at {host}:{port}", lambda: answers(host, port))
    return uri


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database for tests (TEST_REDIS_URL, default db 15), checked to answer."""
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    host, port = address(url, 6379)
    require(f"Redis at {host}:{port}", lambda: answers(host, port))
    return url
