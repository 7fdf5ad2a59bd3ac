"""MongoDB stopped for a minute: the events of that minute wait, nothing is dead-lettered, and
every one is handled once it is back, once.

Failures to reach a store are retried for ``EVENT_RETRY_BUDGET_SECONDS``, not a number of
attempts: with a count (five attempts from a 1 s back-off) an event was dead-lettered after
about 15 s of outage.
"""

from __future__ import annotations

import time

import pytest
import requests

from mesh import dead_letters
from tests.e2e.conftest import Mesh
from tests.faults.helpers import auth, new_product, notification_counts

OUTAGE_SECONDS = 60


@pytest.mark.timeout(600)
def test_a_mongo_outage_loses_and_parks_nothing(mesh: Mesh) -> None:
    admin = {"Authorization": f"Bearer {mesh.admin_token()}"}
    product_id = new_product(mesh, admin, 100)
    shopper = mesh.register()
    headers = auth(mesh, shopper)
    mesh.assert_one_notification(shopper.id)

    stopped = mesh.supervisorctl("stop", "mongo")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    users, orders = [], []
    try:
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE_SECONDS:
            users.append(mesh.register().id)
            placed = requests.post(
                mesh.url("/api/orders"),
                json={"product_id": product_id, "quantity": 1},
                headers=headers,
                timeout=30,
            )
            assert placed.status_code == 201, placed.text
            orders.append(int(placed.json()["id"]))
            paid = requests.patch(  # a shopper may hold only a few unpaid orders
                mesh.url(f"/api/orders/{orders[-1]}"),
                json={"status": "paid"},
                headers=admin,
                timeout=30,
            )
            assert paid.status_code == 200, paid.text
            time.sleep(5)
    finally:
        back = mesh.supervisorctl("start", "mongo")
        assert back.returncode == 0, back.stdout + back.stderr
        mesh.wait_running("mongo")

    def handled() -> bool:
        welcomed = notification_counts(mesh, "userId", users, "user.registered")
        told = notification_counts(mesh, "orderId", orders, "order.created")
        return len(welcomed) == len(users) and len(told) == len(orders)

    deadline = time.monotonic() + 180
    while not handled() and time.monotonic() < deadline:
        time.sleep(2)
    parked = {q: n for q, n in dead_letters.counts(mesh.env["AMQP_URI"]).items() if n}
    assert parked == {}, f"dead-lettered during a {OUTAGE_SECONDS} s MongoDB outage"
    assert handled(), "some events of the outage were never handled"
    time.sleep(3)  # a duplicate would arrive within this
    assert set(notification_counts(mesh, "userId", users, "user.registered").values()) == {1}
    assert set(notification_counts(mesh, "orderId", orders, "order.created").values()) == {1}
