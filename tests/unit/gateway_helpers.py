"""Small helpers and fakes shared by the gateway's unit tests (conftest.py builds fixtures on
them; test_gateway_schemathesis.py builds its module-wide app on them)."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from contracts.errors import Unavailable
from gateway.rpc_pool import RpcClient
from mesh.context import get_correlation_id
from tests.unit.fake_sorted_sets import FakeSortedSets
from tests.unit.service_fakes import LocalTransport


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the one JSON error shape, ``{error, message, details?}``; return the body."""
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "details"}
    assert body.get("details", []) not in ("None", None), body  # present only with content
    return body


# ----------------------------------------------------------------- the services' transports


@dataclass(frozen=True)
class Call:
    """One call that crossed the transport: wire arguments, and the correlation id then."""

    service: str
    method: str
    args: tuple[Any, ...]
    correlation_id: str | None


class RecordingTransport(LocalTransport):
    """A :class:`LocalTransport` that keeps every call it carried (``calls``)."""

    def __init__(self, **services: object) -> None:
        super().__init__(**services)
        self.calls: list[Call] = []

    def call(self, service: str, method: str, *args: Any) -> Any:
        self.calls.append(Call(service, method, args, get_correlation_id()))
        return super().call(service, method, *args)

    def methods(self, service: str | None = None) -> list[str]:
        """The names of the methods called so far (of ``service`` only, if given)."""
        return [c.method for c in self.calls if service in (None, c.service)]


class FakeRpc(RpcClient):
    """The raw RPC client, now used for readiness pings only: any other call is a bug.

    A service with a fake answers through the fake's ``ping``; any other service answers
    its name, as every service does (a service ``down`` does not answer).
    """

    def __init__(self, services: dict[str, Any]) -> None:
        self.services = services
        self.down: set[str] = set()
        self.pings: list[str] = []
        self.closed = False

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        assert method == "ping", f"the gateway called {service}.{method} outside Services"
        self.pings.append(service)
        if service in self.down:
            raise Unavailable(f"service {service} did not answer")
        fake = self.services.get(service)
        return service if fake is None else fake.ping()

    def close(self) -> None:
        self.closed = True


# ----------------------------------------------------------------- Redis


class FakePubSub:
    """The subset of redis-py's PubSub the SSE relay uses."""

    def __init__(self, redis: FakeRedis, ignore_subscribe_messages: bool = False) -> None:
        self.redis = redis
        self.channels: set[str] = set()
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.closed = False

    def subscribe(self, *channels: str) -> None:
        self.channels.update(channels)
        self.redis.subscribers.append(self)

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float = 0.0
    ) -> dict[str, Any] | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        if self in self.redis.subscribers:
            self.redis.subscribers.remove(self)


class FakeRedis(FakeSortedSets):
    """The subset of redis-py's Redis (decode_responses=True) the gateway uses."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, float | None]] = {}
        self.subscribers: list[FakePubSub] = []
        self.down = False

    def _live(self, key: str) -> bool:
        if key not in self.data:
            return False
        _, expires = self.data[key]
        if expires is not None and expires <= time.monotonic():
            del self.data[key]
            return False
        return True

    def set(
        self,
        name: str,
        value: Any,
        ex: int | None = None,
        px: int | None = None,
        nx: bool = False,
    ) -> bool | None:
        if nx and self._live(name):
            return None
        ttl = ex if ex is not None else (px / 1000 if px is not None else None)
        self.data[name] = (str(value), time.monotonic() + ttl if ttl is not None else None)
        return True

    def get(self, name: str) -> str | None:
        return self.data[name][0] if self._live(name) else None

    def mget(self, *names: str) -> list[str | None]:
        return [self.get(name) for name in names]

    def ttl(self, name: str) -> int:
        if not self._live(name):
            return -2
        expires = self.data[name][1]
        return -1 if expires is None else int(expires - time.monotonic())

    def exists(self, *names: str) -> int:
        return sum(1 for name in names if self._live(name))

    def delete(self, *names: str) -> int:
        return sum(1 for name in names if self.data.pop(name, None) is not None)

    def ping(self) -> bool:
        if self.down:
            from redis.exceptions import ConnectionError

            raise ConnectionError("fake redis is down")
        return True

    def pubsub(self, ignore_subscribe_messages: bool = False) -> FakePubSub:
        return FakePubSub(self, ignore_subscribe_messages)

    def publish(self, channel: str, data: str) -> int:
        receivers = [s for s in self.subscribers if channel in s.channels]
        for sub in receivers:
            sub.inbox.put({"type": "message", "pattern": None, "channel": channel, "data": data})
        return len(receivers)


# ----------------------------------------------------------------- a clock


class FakeClock:
    """A clock that moves only when a test moves it (``clock.now += seconds``)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------- the app's config

TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_STORAGE_OPTIONS": {},
    "LOGIN_RATE_IP": "1000/minute",
    "LOGIN_RATE_ACCOUNT": "1000/minute",
    "LOGIN_RATE_ACCOUNT_TOTAL": "1000/minute",
    "REGISTER_RATE_IP": "1000/minute",
    "API_RATE_IP": "10000/minute",
    "SSE_POLL_SECONDS": 0.01,
    # No broker behind it: /metrics shows no dead-letter gauge, and never waits for one.
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:1//",
}
