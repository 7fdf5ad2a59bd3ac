"""Every process's metrics show on the gateway's /metrics: the services' outbox relays,
their entrypoints, the Dramatiq actors and the dead-letter queues."""

from __future__ import annotations

import uuid

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


def summed(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples carrying ``labels``, over every process (pid)."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_an_order_shows_as_rpc_event_and_actor_metrics(mesh: Mesh) -> None:
    admin = {"Authorization": f"Bearer {mesh.admin_token()}"}
    product = {"name": f"Lamp {uuid.uuid4().hex[:6]}", "price_cents": 999, "currency": "EUR"}
    created = requests.post(
        mesh.url("/api/products"), json={**product, "stock": 3}, headers=admin, timeout=15
    )
    assert created.status_code == 201, created.text
    buyer = mesh.register()  # its welcome e-mail goes through the Dramatiq actor
    token = mesh.login(buyer)["access_token"]
    placed = requests.post(
        mesh.url("/api/orders"),
        json={"product_id": created.json()["id"], "quantity": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert placed.status_code == 201, placed.text

    def measured() -> str | None:
        text = requests.get(mesh.url("/metrics"), timeout=10).text
        counts = (
            summed(
                text,
                "mesh_entrypoint_calls_total",
                service="orders",
                entrypoint="create_order",
                kind="rpc",
            ),
            summed(
                text,
                "mesh_entrypoint_calls_total",
                service="notifications",
                entrypoint="on_order_created",
                kind="event",
            ),
            summed(text, "mesh_actor_duration_seconds_count", actor="send_email"),
        )
        return text if all(count >= 1 for count in counts) else None

    text = mesh.eventually(measured, 60, what="the order's RPC, event and e-mail on /metrics")
    create = {"service": "orders", "entrypoint": "create_order", "kind": "rpc"}
    assert summed(text, "mesh_entrypoint_duration_seconds_count", **create) >= 1
    assert summed(text, "mesh_entrypoint_duration_seconds_bucket", **create, le="+Inf") >= 1
    assert 'mesh_dead_letters{queue="email"}' in text  # read from RabbitMQ by the gateway
