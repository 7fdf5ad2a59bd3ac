"""When each order of the bench shopper reaches Redis: its ``order.created`` event on the
mirror's pub/sub channel, and its notification on the shopper's stream (appended once the
notification is stored in MongoDB). Two threads, each stamping ``time.time()`` on arrival."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis

from contracts.notifications import user_stream_key
from contracts.orders import OrderCreated
from services.notifications.streams import FIELD

POLL_SECONDS = 0.2


class NotificationWatch:
    """``published`` and ``streamed``: order id -> epoch seconds it was seen in Redis."""

    def __init__(self, redis_url: str, user_id: int) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.user_id = user_id
        self.published: dict[int, float] = {}
        self.streamed: dict[int, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Subscribe and note the stream's end before returning: nothing after is missed."""
        pubsub = self.client.pubsub()
        pubsub.subscribe(OrderCreated.type)
        confirmed = pubsub.get_message(timeout=10.0)
        if confirmed is None or confirmed["type"] != "subscribe":
            raise RuntimeError(f"no confirmation of the subscription to {OrderCreated.type}")
        last = self.client.xinfo_stream(self.stream)["last-generated-id"] if self._exists() else 0
        self._threads = [
            threading.Thread(target=self._listen, args=(pubsub,), daemon=True),
            threading.Thread(target=self._follow, args=(last,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.client.close()

    def wait_for(self, order_ids: set[int], timeout: float) -> None:
        """Until every order was seen on both, or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not order_ids <= self.complete():
            time.sleep(POLL_SECONDS)

    def complete(self) -> set[int]:
        """The orders seen on the channel and on the stream."""
        return set(self.published) & set(self.streamed)

    def seen_at(self, order_id: int) -> float | None:
        """When the later of the two arrived (None until both have)."""
        if order_id not in self.published or order_id not in self.streamed:
            return None
        return max(self.published[order_id], self.streamed[order_id])

    @property
    def stream(self) -> str:
        return user_stream_key(self.user_id)

    def _exists(self) -> bool:
        return bool(self.client.exists(self.stream))

    def _listen(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=POLL_SECONDS)
            if message is None or message["type"] != "message":
                continue
            seen = time.time()
            event = json.loads(message["data"])
            if event.get("user_id") == self.user_id:
                self.published.setdefault(int(event["order_id"]), seen)
        pubsub.close()

    def _follow(self, last: Any) -> None:
        while not self._stop.is_set():
            batches: Any = self.client.xread({self.stream: last}, count=500, block=200)
            seen = time.time()
            for _, entries in batches:
                for entry_id, fields in entries:
                    last = entry_id
                    notification = json.loads(fields[FIELD.encode()])
                    if notification["type"] == OrderCreated.type and notification["order_id"]:
                        self.streamed.setdefault(int(notification["order_id"]), seen)
