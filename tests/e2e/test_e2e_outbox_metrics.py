"""The services' outbox relays show on the gateway's /metrics."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import Mesh

pytestmark = pytest.mark.e2e


def test_outbox_backlog_of_every_sql_service_is_on_metrics(mesh: Mesh) -> None:
    mesh.register()  # users' outbox publishes user.registered

    def exposed() -> str | None:
        text = requests.get(mesh.url("/metrics"), timeout=10).text
        services = ("users", "catalog", "orders", "courses")
        wanted = [f'service="{name}"}} 0.0' for name in services]
        backlog = [line for line in text.splitlines() if line.startswith("mesh_outbox_backlog{")]
        return text if all(any(w in line for line in backlog) for w in wanted) else None

    text = mesh.eventually(exposed, 30, what="every outbox's backlog at 0 on /metrics")
    assert "mesh_outbox_oldest_unpublished_seconds{" in text
    assert "mesh_outbox_relay_failures_total{" in text
