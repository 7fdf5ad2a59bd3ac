"""What the fault tests share: shop set-up, order placing and fan-out counting."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis
import requests
from pymongo import MongoClient

from tests.e2e.conftest import Mesh, User

RESERVATION_GRACE_SECONDS = 60  # the least the mesh takes: a lost order's stock is back soon


def auth(mesh: Mesh, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.login(user)['access_token']}"}


def new_product(mesh: Mesh, admin: dict[str, str], stock: int) -> int:
    body = {"name": f"Fault {uuid.uuid4().hex[:6]}", "price_cents": 500, "currency": "EUR"}
    response = requests.post(
        mesh.url("/api/products"), json={**body, "stock": stock}, headers=admin, timeout=15
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def stock(mesh: Mesh, product_id: int) -> int:
    response = requests.get(mesh.url(f"/api/products/{product_id}"), timeout=15)
    assert response.status_code == 200, response.text
    return int(response.json()["stock"])


def my_order_ids(mesh: Mesh, headers: dict[str, str]) -> set[int]:
    ids: set[int] = set()
    offset = 0
    while True:
        page = requests.get(
            mesh.url("/api/orders"),
            params={"limit": 100, "offset": offset},
            headers=headers,
            timeout=15,
        )
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        ids.update(int(item["id"]) for item in items)
        if len(items) < 100:
            return ids
        offset += 100


def notification_counts(mesh: Mesh, field: str, values: Iterable[int], kind: str) -> Counter[int]:
    """How many notifications of type ``kind`` each value of ``field`` has in MongoDB."""
    client: MongoClient[dict[str, Any]] = MongoClient(mesh.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        found = client[mesh.mongo_db]["notifications"].find(
            {field: {"$in": list(values)}, "type": kind}, {field: 1}
        )
        return Counter(int(doc[field]) for doc in found)
    finally:
        client.close()


class ChannelRecorder:
    """Records every message of a Redis pub/sub channel, on a thread, until ``close()``."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.pubsub = redis.Redis.from_url(redis_url).pubsub()
        self.pubsub.subscribe(channel)
        confirmed = self.pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe", confirmed
        self.events: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            except redis.RedisError as exc:  # the suite stops Redis on purpose elsewhere
                self.errors.append(exc)
                time.sleep(0.5)
                continue
            if message:
                self.events.append(json.loads(message["data"]))

    def count(self, key: str, **match: Any) -> Counter[int]:
        """How many times each value of ``key`` came, in the events that have ``match``."""
        return Counter(
            int(event[key])
            for event in list(self.events)
            if key in event and all(event.get(k) == v for k, v in match.items())
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
