"""The fault suite: the e2e mesh (tests/e2e/conftest.py) pointed at a private RabbitMQ node and a
private Redis, which the tests stop and start. ``make faults`` runs it.

It takes minutes and stops servers, so a plain ``pytest`` leaves it out: it is collected only
when named on the command line (``pytest tests/faults``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Every fixture of the e2e suite (the mesh and what it needs); the ones below override a few.
from tests.e2e.conftest import *  # noqa: F403
from tests.faults.gate import ignored
from tests.faults.helpers import RESERVATION_GRACE_SECONDS
from tests.faults.servers import PrivateRabbit, PrivateRedis

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return ignored(collection_path, config, HERE)


@pytest.fixture(scope="session", autouse=True)
def mesh_environment() -> Iterator[None]:
    """Settings of the faults' mesh (autouse: set before the mesh copies the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESERVATION_GRACE_SECONDS", str(RESERVATION_GRACE_SECONDS))
        yield


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[PrivateRabbit]:
    server = PrivateRabbit()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def amqp_uri(private_rabbit: PrivateRabbit) -> str:
    return private_rabbit.uri


@pytest.fixture(scope="session")
def redis_url(private_redis: PrivateRedis) -> str:
    return private_redis.url()


@pytest.fixture(scope="session")  # type: ignore[no-redef]  # overrides the e2e suite's
def rabbitmqctl(private_rabbit: PrivateRabbit) -> list[str]:
    return private_rabbit.ctl
