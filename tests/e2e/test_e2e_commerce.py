"""Catalog, wishlists and orders through the real gateway, with their fan-out."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from mesh import topology
from tests.e2e import crash
from tests.e2e.conftest import Mesh, User, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(mesh: Mesh) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.admin_token()}"}


def auth(mesh: Mesh, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.login(user)['access_token']}"}


def new_product(
    mesh: Mesh, admin: dict[str, str], stock: int = 5, price: int = 1999
) -> dict[str, Any]:
    body = {
        "name": f"Lamp {uuid.uuid4().hex[:6]}",
        "price_cents": price,
        "currency": "EUR",
        "stock": stock,
    }
    response = requests.post(mesh.url("/api/products"), json=body, headers=admin, timeout=15)
    assert response.status_code == 201, response.text
    return dict(response.json())


def order(
    mesh: Mesh, headers: dict[str, str], product_id: int, quantity: int = 1
) -> requests.Response:
    return requests.post(
        mesh.url("/api/orders"),
        json={"product_id": product_id, "quantity": quantity},
        headers=headers,
        timeout=15,
    )


def product_stock(mesh: Mesh, product_id: int) -> int:
    return int(requests.get(mesh.url(f"/api/products/{product_id}"), timeout=15).json()["stock"])


def test_products_are_admin_written_and_cached(
    mesh: Mesh, admin: dict[str, str], user: User
) -> None:
    product = new_product(mesh, admin)
    url = mesh.url(f"/api/products/{product['id']}")
    denied = requests.patch(url, json={"price_cents": 1}, headers=auth(mesh, user), timeout=15)
    assert denied.status_code == 403
    assert requests.get(url, timeout=15).headers["X-Cache"] == "MISS"
    # The mirror makes the entry stale once more when the creation event reaches it.
    eventually(lambda: requests.get(url, timeout=15).headers["X-Cache"] == "HIT", 10, what="HIT")
    patched = requests.patch(url, json={"price_cents": 1499}, headers=admin, timeout=15)
    assert patched.status_code == 200 and patched.json()["price_cents"] == 1499
    fresh = requests.get(url, timeout=15)
    assert fresh.headers["X-Cache"] == "MISS" and fresh.json()["price_cents"] == 1499
    listed = requests.get(mesh.url("/api/products"), params={"q": product["name"]}, timeout=15)
    assert [p["id"] for p in listed.json()["items"]] == [product["id"]]
    assert requests.delete(url, headers=admin, timeout=15).status_code == 204
    assert requests.get(url, timeout=15).status_code == 404


def test_an_order_is_owner_only_and_fans_out_once(mesh: Mesh, admin: dict[str, str]) -> None:
    alice, bob = mesh.register(), mesh.register()
    a, b = auth(mesh, alice), auth(mesh, bob)
    product = new_product(mesh, admin, stock=3, price=250)
    sub = redis.Redis.from_url(mesh.redis_url).pubsub()
    sub.subscribe("order.created")

    created = order(mesh, a, product["id"], 2)
    assert created.status_code == 201, created.text
    placed = created.json()
    assert (placed["status"], placed["unit_price"], placed["total"]) == ("pending", 250, 500)
    url = mesh.url(f"/api/orders/{placed['id']}")
    assert requests.get(url, headers=a, timeout=15).headers["X-Cache"] == "MISS"
    assert requests.get(url, headers=a, timeout=15).headers["X-Cache"] == "HIT"
    assert requests.get(url, headers=b, timeout=15).status_code == 404  # cached, still not Bob's
    assert requests.get(url + "/notifications", headers=b, timeout=15).status_code == 404
    assert product_stock(mesh, product["id"]) == 1

    def order_notifications() -> list[dict[str, Any]]:
        return list(requests.get(url + "/notifications", headers=a, timeout=15).json()["items"])

    mesh.eventually(order_notifications, what="the order.created notification")
    messages = _received(sub, 3, lambda m: m.get("order_id") == placed["id"])
    assert len(messages) == 1
    time.sleep(1)
    assert [n["type"] for n in order_notifications()] == ["order.created"]


def test_cancel_returns_stock_and_the_state_machine_holds(
    mesh: Mesh, admin: dict[str, str]
) -> None:
    shopper = mesh.register()
    headers = auth(mesh, shopper)
    product = new_product(mesh, admin, stock=2)
    placed = order(mesh, headers, product["id"]).json()
    url = mesh.url(f"/api/orders/{placed['id']}")
    requests.get(url, headers=headers, timeout=15)  # cache it
    cancelled = requests.post(url + "/cancel", headers=headers, timeout=15)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert requests.get(url, headers=headers, timeout=15).json()["status"] == "cancelled"
    assert product_stock(mesh, product["id"]) == 2
    again = requests.patch(url, json={"status": "paid"}, headers=admin, timeout=15)
    assert again.status_code == 409
    mesh.eventually(
        lambda: mesh.notification_count(shopper.id, "order.status_changed") == 1,
        what="the order.status_changed notification",
    )


def test_two_buyers_race_for_the_last_item(mesh: Mesh, admin: dict[str, str]) -> None:
    product = new_product(mesh, admin, stock=1)
    buyers = [auth(mesh, mesh.register()) for _ in range(6)]
    with ThreadPoolExecutor(len(buyers)) as pool:
        statuses = sorted(pool.map(lambda h: order(mesh, h, product["id"]).status_code, buyers))
    assert statuses == [201] + [409] * (len(buyers) - 1)
    assert product_stock(mesh, product["id"]) == 0


def test_a_price_drop_tells_the_wishlisters(mesh: Mesh, admin: dict[str, str]) -> None:
    fan = mesh.register()
    headers = auth(mesh, fan)
    product = new_product(mesh, admin, price=5000)
    wish = mesh.url(f"/api/wishlist/{product['id']}")
    assert requests.put(wish, headers=headers, timeout=15).status_code == 200
    assert requests.put(wish, headers=headers, timeout=15).status_code == 200  # idempotent
    listed = requests.get(mesh.url("/api/wishlist"), headers=headers, timeout=15).json()["items"]
    assert [item["product"]["id"] for item in listed] == [product["id"]]
    cheaper = mesh.url(f"/api/products/{product['id']}")
    assert requests.patch(cheaper, json={"price_cents": 3000}, headers=admin, timeout=15).ok
    mesh.eventually(
        lambda: mesh.notification_count(fan.id, "product.updated") == 1,
        what="the price-drop notification",
    )
    assert requests.delete(wish, headers=headers, timeout=15).status_code == 204
    assert (
        requests.get(mesh.url("/api/wishlist"), headers=headers, timeout=15).json()["items"] == []
    )


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": 1, "quantity": 0},
        {"product_id": 1, "quantity": -1},
        {"product_id": 1, "quantity": 101},
        {"product_id": 1, "quantity": "2"},
        {"product_id": 1, "quantity": 10**12},
        {"product_id": "1", "quantity": 1},
        {"product_id": -5, "quantity": 1},
        {"quantity": 1},
    ],
)
def test_bad_orders_are_refused_and_write_nothing(
    mesh: Mesh, admin: dict[str, str], body: dict[str, Any]
) -> None:
    shopper = mesh.register()
    headers = auth(mesh, shopper)
    response = requests.post(mesh.url("/api/orders"), json=body, headers=headers, timeout=15)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input" and response.json()["details"]
    assert requests.get(mesh.url("/api/orders"), headers=headers, timeout=15).json()["items"] == []


def test_unknown_product_malformed_json_and_no_stock(mesh: Mesh, admin: dict[str, str]) -> None:
    headers = auth(mesh, mesh.register())
    assert order(mesh, headers, 10**9).status_code == 404
    broken = requests.post(
        mesh.url("/api/orders"),
        data="{nope",
        headers={**headers, "Content-Type": "application/json"},
        timeout=15,
    )
    assert broken.status_code == 400
    product = new_product(mesh, admin, stock=1)
    assert order(mesh, headers, product["id"], 2).status_code == 409
    assert product_stock(mesh, product["id"]) == 1


def test_order_fan_out_survives_notifications_being_killed(
    mesh: Mesh, admin: dict[str, str], rabbitmqctl: list[str] | None
) -> None:
    """SIGKILL notifications while it holds the order's event, applied but not acked.

    A pause fault (tests/e2e/crash.py) holds the handler of our order.created after it
    stored the notification and queued the e-mail, before the ack: the kill lands there,
    in the process supervisord runs, which comes back under a new pid. The redelivered
    event finds its work done: one notification, one e-mail, one mirrored event.
    """
    shopper = mesh.register()
    headers = auth(mesh, shopper)
    product = new_product(mesh, admin)
    sub = redis.Redis.from_url(mesh.redis_url).pubsub()
    sub.subscribe("order.created")
    point = "notifications.after_effect"
    crash.arm(mesh, point, {"type": "order.created", "user_id": shopper.id})
    try:
        placed = order(mesh, headers, product["id"]).json()
        held = crash.wait_fired(mesh, point)
    finally:
        crash.disarm(mesh, point)
    assert held.detail["order_id"] == placed["id"], held
    assert crash.program_pid(mesh, "notifications") == held.pid
    (key,) = mesh.notification_keys(shopper.id, "order.created")  # applied, not yet acked
    queue = topology.handler_queue_name(
        "orders", "order.created", "notifications", "on_order_created"
    )
    if rabbitmqctl:
        assert crash.queue_counts(mesh, rabbitmqctl, queue)[queue] == (0, 1)

    crash.sigkill(held.pid)
    crash.wait_restarted(mesh, "notifications", held.pid)

    crash.assert_redelivered(mesh, key)
    mesh.assert_one_notification(shopper.id, "order.created")
    assert len(_received(sub, 3, lambda m: m.get("order_id") == placed["id"])) == 1


def _received(sub: Any, seconds: float, match: Any) -> list[dict[str, Any]]:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message and match(body := json.loads(message["data"])):
            found.append(body)
    return found


def test_a_retried_order_with_an_idempotency_key_is_placed_once(
    mesh: Mesh, admin: dict[str, str]
) -> None:
    headers = {**auth(mesh, mesh.register()), "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    product = new_product(mesh, admin, stock=5)
    first, again = (order(mesh, headers, product["id"], 2) for _ in range(2))
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert product_stock(mesh, product["id"]) == 3
    reused = order(mesh, headers, product["id"], 1)
    assert reused.status_code == 409


def test_a_cancel_while_the_catalogs_store_is_locked_gets_its_stock_back(
    mesh: Mesh, admin: dict[str, str]
) -> None:
    """The catalog's SQLite file is locked for longer than its busy timeout (30 s): the
    cancel's release fails, and so do the event handler's first attempts. Once the store is
    back, the stock comes back: from the event's retries, or else from the settling timer
    (the reservation is aged past the grace period while the lock is held)."""
    shopper = mesh.register()
    product = new_product(mesh, admin, stock=3)
    placed = order(mesh, auth(mesh, shopper), product["id"], quantity=2).json()
    assert product_stock(mesh, product["id"]) == 1
    store = sqlite3.connect(mesh.var_dir / "catalog.db", timeout=30, isolation_level=None)
    try:
        store.execute("BEGIN EXCLUSIVE")
        store.execute(
            "UPDATE reservations SET created_at = datetime('now', '-1 hour') "
            "WHERE product_id = ? AND released_at IS NULL",
            (product["id"],),
        )
        url = mesh.url(f"/api/orders/{placed['id']}/cancel")
        cancelled = requests.post(url, headers=auth(mesh, shopper), timeout=60)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(35)  # the store stays down past the catalog's busy timeout
        store.execute("COMMIT")
    finally:
        store.close()
    mesh.eventually(
        lambda: product_stock(mesh, product["id"]) == 3,
        timeout=150,
        what="the cancelled order's stock back",
    )
