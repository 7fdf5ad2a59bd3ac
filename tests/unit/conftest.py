"""Gateway fixtures: the service fakes behind a JSON transport, a fake Redis, an app on them.

The app's ``Services`` are typed clients over a :class:`RecordingTransport` to the fakes of
``tests/unit/service_fakes.py``: every call crosses JSON and nameko's error serialisation, as
it does over RabbitMQ. The raw RPC client (:class:`FakeRpc`) only answers readiness pings.
The fakes of the gateway's own adapters (Redis, the RPC client, a clock) live in
``tests/unit/gateway_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.deps import Services
from tests.unit.gateway_helpers import (
    TEST_CONFIG,
    FakeClock,
    FakeRedis,
    FakeRpc,
    RecordingTransport,
    bearer,
)
from tests.unit.service_fakes import (
    PASSWORD,
    FakeAnalytics,
    FakeAssistant,
    FakeCatalog,
    FakeContent,
    FakeCourses,
    FakeNotifications,
    FakeOrders,
    FakeUsers,
)

# ----------------------------------------------------------------- the services


@pytest.fixture
def fake_users() -> FakeUsers:
    return FakeUsers()


@pytest.fixture
def fake_catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def fake_orders(fake_catalog: FakeCatalog) -> FakeOrders:
    return FakeOrders(fake_catalog)


@pytest.fixture
def fake_notifications() -> FakeNotifications:
    return FakeNotifications()


@pytest.fixture
def fake_content() -> FakeContent:
    return FakeContent()


@pytest.fixture
def fake_courses(fake_content: FakeContent) -> FakeCourses:
    return FakeCourses(fake_content)


@pytest.fixture
def fake_assistant(fake_content: FakeContent) -> FakeAssistant:
    """The assistant on the same content (its streams in its own fake Redis: the SSE answer
    is tested in test_gateway_assistant.py, on one Redis with streams)."""
    return FakeAssistant(fake_content)


@pytest.fixture
def fake_analytics() -> FakeAnalytics:
    return FakeAnalytics()


@pytest.fixture
def fakes(
    fake_users: FakeUsers,
    fake_catalog: FakeCatalog,
    fake_orders: FakeOrders,
    fake_notifications: FakeNotifications,
    fake_courses: FakeCourses,
    fake_content: FakeContent,
    fake_assistant: FakeAssistant,
    fake_analytics: FakeAnalytics,
) -> dict[str, Any]:
    """Every fake, by service name."""
    return {
        "users": fake_users,
        "catalog": fake_catalog,
        "orders": fake_orders,
        "notifications": fake_notifications,
        "courses": fake_courses,
        "content": fake_content,
        "assistant": fake_assistant,
        "analytics": fake_analytics,
    }


@pytest.fixture
def transport(fakes: dict[str, Any]) -> RecordingTransport:
    return RecordingTransport(**fakes)


@pytest.fixture
def services(transport: RecordingTransport) -> Services:
    """The gateway's typed clients, over JSON to the fakes."""
    return Services.over(transport)


@pytest.fixture
def fake_rpc(fakes: dict[str, Any]) -> FakeRpc:
    return FakeRpc(fakes)


# ----------------------------------------------------------------- Redis, a clock, the app


@pytest.fixture
def fake_redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """The app's uploads folder (``UPLOADS_PATH``), under the test's own tmp_path."""
    return tmp_path / "uploads"


@pytest.fixture
def make_app(
    fake_rpc: FakeRpc, fake_redis: FakeRedis, services: Services, uploads: Path
) -> Callable[..., Flask]:
    """Build an app on the fakes; keyword arguments override the test config, and
    ``services=`` the typed clients."""

    def build(*, services_: Services | None = None, **overrides: Any) -> Flask:
        config = {**TEST_CONFIG, "UPLOADS_PATH": str(uploads), **overrides}
        return create_app(
            config,
            rpc=fake_rpc,
            redis=fake_redis,  # type: ignore[arg-type]
            services=services_ or services,
        )

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def register(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Register an account through the gateway; returns the response body."""

    def do(email: str = "ada@example.com", name: str = "Ada", **fields: Any) -> dict[str, Any]:
        body = {"email": email, "password": PASSWORD, "name": name, **fields}
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    return do


@pytest.fixture
def login(
    client: FlaskClient, register: Callable[..., dict[str, Any]], fake_users: FakeUsers
) -> Callable[..., dict[str, Any]]:
    """Register (once, through the gateway) and log in; ``admin=True`` promotes the account
    first (as ``mesh admin`` does), ``role=`` registers it as that role."""

    def do(email: str = "ada@example.com", admin: bool = False, **fields: Any) -> dict[str, Any]:
        if not any(u.email == email for u in fake_users.users.values()):
            register(email=email, **fields)
        if admin:
            fake_users.promote_admin(email)
        response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    return do


@pytest.fixture
def auth_header() -> Callable[[str], dict[str, str]]:
    return bearer
