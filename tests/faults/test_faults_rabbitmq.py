"""RabbitMQ restarted while orders are placed: every 201 fans out exactly once, and every 503
is settled by a retry with the Idempotency-Key it hands back: one order, never two, nothing
half-done. (A 503 cannot mean "nothing was placed": the broker may lose only the answer of an
order the orders service stored, as this test saw before the key was handed back.) Stock a
refused attempt reserved without an order comes back once the reservation grace is over.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import Mesh, eventually
from tests.faults.helpers import (
    RESERVATION_GRACE_SECONDS,
    ChannelRecorder,
    auth,
    my_order_ids,
    new_product,
    notification_counts,
    stock,
)
from tests.faults.servers import PrivateRabbit

STOCK = 10_000
SHOPPERS = 2
DOWN_SECONDS = 8


class Shop:
    """Shoppers placing one-item orders in a loop, recording every answer. An administrator
    marks each order paid (retried until it is): a shopper may hold only a few unpaid ones."""

    def __init__(
        self, mesh: Mesh, headers: dict[str, str], admin: dict[str, str], product_id: int
    ) -> None:
        self.mesh, self.headers, self.admin, self.product_id = mesh, headers, admin, product_id
        self.created: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self.unsettled: list[str] = []  # the Idempotency-Key of each 503
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def pay(self, session: requests.Session, order_id: int) -> bool:
        answer = session.patch(
            self.mesh.url(f"/api/orders/{order_id}"),
            json={"status": "paid"},
            headers=self.admin,
            timeout=60,
        )
        return answer.status_code == 200

    def shop(self) -> None:
        unpaid: list[int] = []
        with requests.Session() as session:
            while not self.stop.is_set():
                unpaid = [order_id for order_id in unpaid if not self.pay(session, order_id)]
                answer = session.post(
                    self.mesh.url("/api/orders"),
                    json={"product_id": self.product_id, "quantity": 1},
                    headers=self.headers,
                    timeout=60,
                )
                with self.lock:
                    if answer.status_code == 201:
                        self.created.append(int(answer.json()["id"]))
                        unpaid.append(self.created[-1])
                    else:
                        self.refused.append((answer.status_code, answer.text[:200]))
                        if answer.status_code == 503:
                            self.unsettled.append(answer.headers["Idempotency-Key"])
                time.sleep(0.05)

    def settle(self) -> list[int]:
        """Retry each 503 with its key and pay what it answers: the order placed then, or now."""
        settled: list[int] = []
        with requests.Session() as session:
            for key in self.unsettled:
                answer = session.post(
                    self.mesh.url("/api/orders"),
                    json={"product_id": self.product_id, "quantity": 1},
                    headers={**self.headers, "Idempotency-Key": key},
                    timeout=60,
                )
                assert answer.status_code == 201, (key, answer.status_code, answer.text)
                settled.append(int(answer.json()["id"]))
                eventually(lambda: self.pay(session, settled[-1]), 60, what="the order paid")
        return settled

    def placed_after(self, count: int) -> bool:
        with self.lock:
            return len(self.created) > count


@pytest.mark.timeout(900)
def test_orders_through_a_broker_restart(mesh: Mesh, private_rabbit: PrivateRabbit) -> None:
    admin = {"Authorization": f"Bearer {mesh.admin_token()}"}
    product_id = new_product(mesh, admin, STOCK)
    headers = auth(mesh, mesh.register())
    mirrored = ChannelRecorder(mesh.redis_url, "order.created")
    shop = Shop(mesh, headers, admin, product_id)
    try:
        with ThreadPoolExecutor(SHOPPERS) as pool:
            runs = [pool.submit(shop.shop) for _ in range(SHOPPERS)]
            try:
                eventually(lambda: shop.placed_after(5), 30, what="orders before the restart")
                private_rabbit.stop_app()
                time.sleep(DOWN_SECONDS)
                private_rabbit.start_app()
                before = len(shop.created)
                eventually(lambda: shop.placed_after(before + 20), 120, what="orders after it")
            finally:
                shop.stop.set()
            for run in runs:
                run.result()

        statuses = Counter(status for status, _ in shop.refused)
        assert set(statuses) <= {503}, shop.refused
        settled = shop.settle()
        created = shop.created + settled
        print(f"201: {len(shop.created)}, 503: {len(settled)}, all settled by their key")
        assert len(set(created)) == len(created), "a retried key placed a second order"
        # Nothing half-done: the orders are exactly the 201s and the settled 503s.
        stored = my_order_ids(mesh, headers)
        assert stored == set(created), "an order no answer accounts for"
        # A reservation whose order was never stored comes back after the grace (catalog's
        # timer asks orders about it every minute): refused orders may hold stock that long.
        expected = STOCK - len(created)
        held = expected - stock(mesh, product_id)
        deadline = time.monotonic() + RESERVATION_GRACE_SECONDS + 90
        while stock(mesh, product_id) != expected and time.monotonic() < deadline:
            time.sleep(2)
        left = stock(mesh, product_id)
        print(f"stock held by refused orders: {held} at first, {expected - left} at the end")
        assert left == expected, f"{expected - left} units stay reserved for refused orders"

        def all_fanned_out() -> bool:
            notified = notification_counts(mesh, "orderId", created, "order.created")
            return len(notified) == len(created) and set(
                mirrored.count("order_id", product_id=product_id)
            ) >= set(created)

        eventually(all_fanned_out, 120, interval=1, what="a notification and a mirror message each")
        time.sleep(3)  # a duplicate would arrive within this
        notified = notification_counts(mesh, "orderId", created, "order.created")
        assert {n for n in notified.values()} == {1}, notified
        seen = mirrored.count("order_id", product_id=product_id)
        assert {seen[order_id] for order_id in created} == {1}, seen
        assert set(seen) <= set(created)
    finally:
        mirrored.close()
