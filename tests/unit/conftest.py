"""Gateway fixtures: a fake RPC client, a fake Redis, an app wired to them (no I/O)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from contracts.orders import TRANSITIONS
from gateway.app import create_app
from mesh.context import get_correlation_id
from mesh.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from mesh.rpc_pool import RpcClient
from tests.unit.gateway_helpers import bearer

PASSWORD = "correct horse battery"
STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()

# ----------------------------------------------------------------- fake RPC


class FakeRpc(RpcClient):
    """Answers from a dict of handlers keyed by (service, method); records every call."""

    def __init__(self, handlers: dict[tuple[str, str], Callable[..., Any]]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, str, tuple[Any, ...], str | None]] = []
        self.closed = False

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((service, method, args, get_correlation_id()))
        return self.handlers[(service, method)](*args, **kwargs)

    def close(self) -> None:
        self.closed = True


class FakeUsers:
    """Just enough of the users and notifications services."""

    def __init__(self) -> None:
        self.users: dict[int, dict[str, Any]] = {}
        self.passwords: dict[int, str] = {}
        self.notifications: dict[int, list[dict[str, Any]]] = {}
        self.order_notifications: dict[int, list[dict[str, Any]]] = {}

    def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        if any(u["email"] == payload["email"] for u in self.users.values()):
            raise Conflict("this e-mail is already registered")
        if payload["name"] == "invalid-on-server":
            raise InvalidInput("invalid input", [{"field": "name", "message": "refused"}])
        user_id = len(self.users) + 1
        self.users[user_id] = {
            "id": user_id,
            "email": payload["email"],
            "name": payload["name"],
            "is_admin": False,
            "created_at": STAMP,
        }
        self.passwords[user_id] = payload["password"]
        return dict(self.users[user_id])

    def authenticate(self, payload: dict[str, Any]) -> dict[str, Any]:
        for user_id, user in self.users.items():
            email_matches = user["email"] == payload["email"].lower()
            if email_matches and self.passwords[user_id] == payload["password"]:
                return dict(user)
        raise AuthenticationFailed("invalid e-mail or password")

    def get_user(self, user_id: int) -> dict[str, Any]:
        if user_id not in self.users:
            raise NotFound(f"user {user_id} not found")
        return dict(self.users[user_id])

    def list_for_user(self, user_id: int, limit: int) -> list[dict[str, Any]]:
        return self.notifications.get(user_id, [])[:limit]

    def get_notifications(self, order_id: int, limit: int = 50) -> list[dict[str, Any]]:
        return self.order_notifications.get(order_id, [])[:limit]

    def handlers(self) -> dict[tuple[str, str], Callable[..., Any]]:
        return {
            ("users", "ping"): lambda: "users",
            ("notifications", "ping"): lambda: "notifications",
            ("users", "register"): self.register,
            ("users", "authenticate"): self.authenticate,
            ("users", "get_user"): self.get_user,
            ("notifications", "list_for_user"): self.list_for_user,
            ("notifications", "get_notifications"): self.get_notifications,
        }


class FakeCatalog:
    """Just enough of the catalog service: products and wishlists."""

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.wishlists: dict[int, dict[int, str]] = {}
        self.next_id = 1

    def add(self, name: str = "Lamp", price_cents: int = 1999, stock: int = 5) -> dict[str, Any]:
        """A product put straight into the fake (no RPC recorded)."""
        return self.create_product({"name": name, "price_cents": price_cents, "stock": stock})

    def _product(self, product_id: int) -> dict[str, Any]:
        if product_id not in self.products:
            raise NotFound("product not found")
        return self.products[product_id]

    def list_products(self, query: dict[str, Any]) -> dict[str, Any]:
        q = (query.get("q") or "").lower()
        found = [
            dict(p)
            for p in self.products.values()
            if q in p["name"].lower() or q in p["description"].lower()
        ]
        limit, offset = query["limit"], query["offset"]
        page = found[offset : offset + limit]
        return {"items": page, "total": len(found), "limit": limit, "offset": offset}

    def get_product(self, product_id: int) -> dict[str, Any]:
        return dict(self._product(product_id))

    def create_product(self, payload: dict[str, Any]) -> dict[str, Any]:
        product = {
            "description": "",
            "currency": "EUR",
            "stock": 0,
            **payload,
            "id": self.next_id,
            "created_at": STAMP,
            "updated_at": STAMP,
        }
        self.products[self.next_id] = product
        self.next_id += 1
        return dict(product)

    def update_product(self, product_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        self._product(product_id).update(payload)
        return dict(self.products[product_id])

    def delete_product(self, product_id: int) -> None:
        self._product(product_id)
        del self.products[product_id]

    def wishlist_list(self, user_id: int) -> list[dict[str, Any]]:
        return [
            {"product": dict(self.products[pid]), "added_at": added}
            for pid, added in self.wishlists.get(user_id, {}).items()
            if pid in self.products
        ]

    def wishlist_add(self, user_id: int, product_id: int) -> dict[str, Any]:
        product = self._product(product_id)
        added = self.wishlists.setdefault(user_id, {}).setdefault(product_id, STAMP)
        return {"product": dict(product), "added_at": added}

    def wishlist_remove(self, user_id: int, product_id: int) -> None:
        self.wishlists.get(user_id, {}).pop(product_id, None)

    def handlers(self) -> dict[tuple[str, str], Callable[..., Any]]:
        names = (
            "list_products",
            "get_product",
            "create_product",
            "update_product",
            "delete_product",
            "wishlist_list",
            "wishlist_add",
            "wishlist_remove",
        )
        return {
            ("catalog", "ping"): lambda: "catalog",
            **{("catalog", name): getattr(self, name) for name in names},
        }


class FakeOrders:
    """Just enough of the orders service, taking stock from a FakeCatalog."""

    def __init__(self, catalog: FakeCatalog) -> None:
        self.catalog = catalog
        self.orders: dict[int, dict[str, Any]] = {}
        self.keys: dict[tuple[int, str], int] = {}

    def _visible(self, order_id: int, user_id: int, is_admin: bool) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None or not (is_admin or order["user_id"] == user_id):
            raise NotFound("order not found")
        return order

    def _move(self, order: dict[str, Any], status: str) -> dict[str, Any]:
        if status not in TRANSITIONS[order["status"]]:
            raise Conflict(f"an order {order['status']} cannot become {status}")
        if status == "cancelled":
            self.catalog.products[order["product_id"]]["stock"] += order["quantity"]
        order["status"] = status
        return dict(order)

    def create_order(
        self, user_id: int, payload: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        if idempotency_key is not None and (user_id, idempotency_key) in self.keys:
            return self.orders[self.keys[user_id, idempotency_key]]
        product = self.catalog._product(payload["product_id"])
        if product["stock"] < payload["quantity"]:
            raise Conflict("not enough stock")
        product["stock"] -= payload["quantity"]
        order_id = len(self.orders) + 1
        self.orders[order_id] = {
            "id": order_id,
            "user_id": user_id,
            "product_id": product["id"],
            "quantity": payload["quantity"],
            "unit_price": product["price_cents"],
            "total": product["price_cents"] * payload["quantity"],
            "currency": product["currency"],
            "status": "pending",
            "created_at": STAMP,
            "updated_at": STAMP,
        }
        if idempotency_key is not None:
            self.keys[user_id, idempotency_key] = order_id
        return dict(self.orders[order_id])

    def list_orders(self, user_id: int, query: dict[str, Any]) -> dict[str, Any]:
        mine = [dict(o) for o in reversed(self.orders.values()) if o["user_id"] == user_id]
        limit, offset = query["limit"], query["offset"]
        return {"items": mine[offset : offset + limit], "limit": limit, "offset": offset}

    def get_order(self, order_id: int, user_id: int, is_admin: bool) -> dict[str, Any]:
        return dict(self._visible(order_id, user_id, is_admin))

    def cancel_order(self, order_id: int, user_id: int, is_admin: bool) -> dict[str, Any]:
        return self._move(self._visible(order_id, user_id, is_admin), "cancelled")

    def set_status(self, order_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        if order_id not in self.orders:
            raise NotFound("order not found")
        return self._move(self.orders[order_id], payload["status"])

    def handlers(self) -> dict[tuple[str, str], Callable[..., Any]]:
        names = ("create_order", "list_orders", "get_order", "cancel_order", "set_status")
        return {
            ("orders", "ping"): lambda: "orders",
            **{("orders", name): getattr(self, name) for name in names},
        }


# ----------------------------------------------------------------- fake Redis


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


class FakeRedis:
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


# ----------------------------------------------------------------- the app

TEST_CONFIG = {
    "TESTING": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_STORAGE_OPTIONS": {},
    "LOGIN_RATE_IP": "1000/minute",
    "LOGIN_RATE_ACCOUNT": "1000/minute",
    "REGISTER_RATE_IP": "1000/minute",
    "API_RATE_IP": "10000/minute",
    "SSE_POLL_SECONDS": 0.01,
}


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
def fake_rpc(fake_users: FakeUsers, fake_catalog: FakeCatalog, fake_orders: FakeOrders) -> FakeRpc:
    return FakeRpc({**fake_users.handlers(), **fake_catalog.handlers(), **fake_orders.handlers()})


@pytest.fixture
def fake_redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(fake_rpc: FakeRpc, fake_redis: FakeRedis) -> Callable[..., Flask]:
    """Build an app on the fakes; keyword arguments override the test config."""

    def build(**overrides: Any) -> Flask:
        return create_app({**TEST_CONFIG, **overrides}, rpc=fake_rpc, redis=fake_redis)  # type: ignore[arg-type]

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

    def do(email: str = "ada@example.com", name: str = "Ada") -> dict[str, Any]:
        body = {"email": email, "password": PASSWORD, "name": name}
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return do


@pytest.fixture
def login(
    client: FlaskClient, register: Callable[..., dict[str, Any]], fake_users: FakeUsers
) -> Callable[..., dict[str, Any]]:
    """Register (once) and log in; ``admin=True`` promotes the account first."""

    def do(email: str = "ada@example.com", admin: bool = False) -> dict[str, Any]:
        if not any(u["email"] == email for u in fake_users.users.values()):
            register(email=email)
        if admin:
            for user in fake_users.users.values():
                if user["email"] == email:
                    user["is_admin"] = True
        response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return do


@pytest.fixture
def auth_header() -> Callable[[str], dict[str, str]]:
    return bearer
