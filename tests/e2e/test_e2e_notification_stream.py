"""Each user's own live notifications: two users placing orders each see only their own on
GET /api/notifications/stream, and a reconnect with Last-Event-ID misses nothing."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import Mesh
from tests.e2e.test_e2e_starvation import wait_streams_closed

pytestmark = pytest.mark.e2e


class Stream:
    """One open SSE stream, read on a thread of its own into a queue of messages."""

    def __init__(self, mesh: Mesh, token: str, last_event_id: str | None = None) -> None:
        parts = urlsplit(mesh.base_url)
        self.connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", "/api/notifications/stream", headers=headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        self.messages: queue.Queue[dict[str, str]] = queue.Queue()
        self.preamble_id: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\n")
                if text:
                    if not text.startswith(":"):
                        name, _, value = text.partition(": ")
                        fields[name] = value
                    continue
                if "data" in fields:
                    self.messages.put(fields)
                elif "id" in fields and self.preamble_id is None:
                    self.preamble_id = fields["id"]
                fields = {}
        except (AttributeError, OSError, ValueError):
            return  # closed under this read

    def next_notification(self, timeout: float = 30) -> dict[str, Any]:
        message = self.messages.get(timeout=timeout)
        assert message["event"] == "notification"
        body: dict[str, Any] = json.loads(message["data"])
        body["_event_id"] = message["id"]
        return body

    def notifications_until(self, done: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """Every notification until ``done(seen)`` is true."""
        seen: list[dict[str, Any]] = []
        while not done(seen):
            try:
                seen.append(self.next_notification(timeout))
            except queue.Empty:
                pytest.fail(f"timed out; the stream sent only {seen}")
        return seen

    def close(self) -> None:
        self.connection.close()


def place_order(mesh: Mesh, token: str, product_id: int) -> int:
    response = requests.post(
        mesh.url("/api/orders"),
        json={"product_id": product_id, "quantity": 1},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=15,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def new_product(mesh: Mesh) -> int:
    admin = {"Authorization": f"Bearer {mesh.admin_token()}"}
    body = {
        "name": f"Lamp {uuid.uuid4().hex[:6]}",
        "price_cents": 999,
        "currency": "EUR",
        "stock": 20,
    }
    response = requests.post(mesh.url("/api/products"), json=body, headers=admin, timeout=15)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def order_created(order_id: int) -> Any:
    def done(seen: list[dict[str, Any]]) -> bool:
        return any(n["type"] == "order.created" and n["order_id"] == order_id for n in seen)

    return done


def test_each_user_sees_only_their_own_and_a_reconnect_misses_nothing(mesh: Mesh) -> None:
    wait_streams_closed(mesh)  # another test's streams may hold every slot for a while
    product = new_product(mesh)
    ada, bob = mesh.register(), mesh.register()
    tokens: dict[int, str] = {u.id: mesh.login(u)["access_token"] for u in (ada, bob)}
    streams = {u.id: Stream(mesh, tokens[u.id]) for u in (ada, bob)}
    orders = {u.id: place_order(mesh, tokens[u.id], product) for u in (ada, bob)}

    seen: dict[int, list[dict[str, Any]]] = {}
    for user in (ada, bob):
        seen[user.id] = streams[user.id].notifications_until(order_created(orders[user.id]))
        assert {n["user_id"] for n in seen[user.id]} == {user.id}, seen[user.id]
        assert all("@" not in json.dumps(n) for n in seen[user.id])  # no e-mail address
    streams[bob.id].close()

    # Ada leaves; two orders are placed while she is away; she comes back with the last id.
    reader = ada
    last_id = seen[reader.id][-1]["_event_id"]
    streams[reader.id].close()
    missed = [place_order(mesh, tokens[reader.id], product) for _ in range(2)]
    mesh.eventually(
        lambda: mesh.notification_count(reader.id, "order.created") >= 3,
        timeout=30,
        what="the orders placed while away stored as notifications",
    )
    again = Stream(mesh, tokens[reader.id], last_event_id=last_id)
    try:
        caught_up = again.notifications_until(
            lambda got: all(order_created(o)(got) for o in missed)
        )
        ids = [n["_event_id"] for n in caught_up]
        assert len(ids) == len(set(ids)) and last_id not in ids  # nothing twice
        assert {n["user_id"] for n in caught_up} == {reader.id}
        live = place_order(mesh, tokens[reader.id], product)
        again.notifications_until(order_created(live))
    finally:
        again.close()
