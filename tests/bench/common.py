"""What the benchmarks share: a bench shopper and product, a light HTTP client, a thread pool
of clients, and waiting for the mesh's queues to drain."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from kombu import Connection

from contracts.notifications import EMAIL_QUEUE
from mesh import topology
from mesh.cli import create_admin
from mesh.dead_letters import waiting_messages
from mesh.settings import Settings
from tests.bench.bench_register import percentile

PASSWORD = "bench-password-42"


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def line(self) -> str:
        ms = [s * 1000 for s in self.latencies]
        return (
            f"{self.name:34s} n={len(ms):5d}  {self.throughput:8.1f} req/s  "
            f"p50={percentile(ms, 50):6.2f} ms  p99={percentile(ms, 99):6.2f} ms"
        )


def run_clients(
    name: str,
    clients: int,
    jobs: list[Any],
    work: Callable[[Any, Any], None],
    make_state: Callable[[], Any],
) -> Result:
    """Run ``work(state, job)`` for every job over ``clients`` threads, one state per thread."""
    local = threading.local()
    latencies: list[float] = []
    lock = threading.Lock()

    def one(job: Any) -> None:
        if not hasattr(local, "state"):
            local.state = make_state()
        started = time.perf_counter()
        work(local.state, job)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, jobs))
    return Result(name, time.perf_counter() - started, latencies)


def login(base: str, email: str) -> dict[str, str]:
    response = requests.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def prepare(settings: Settings, base: str) -> tuple[dict[str, str], int, int]:
    """A shopper's auth header, their id, and a product with plenty of stock."""
    admin = f"bench-admin-{uuid.uuid4().hex[:8]}@example.com"
    create_admin(settings, admin, PASSWORD, "Bench Admin")
    shopper = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    registered = requests.post(
        f"{base}/api/auth/register", json={"email": shopper, "password": PASSWORD, "name": "B"}
    )
    registered.raise_for_status()
    product = requests.post(
        f"{base}/api/products",
        json={"name": "Bench item", "price_cents": 999, "currency": "EUR", "stock": 1_000_000},
        headers=login(base, admin),
    )
    product.raise_for_status()
    return login(base, shopper), int(registered.json()["id"]), int(product.json()["id"])


class Client:
    """One keep-alive HTTP connection: far lighter than requests, so that the load generator,
    which shares the machine's two cores with the mesh, takes as little CPU as it can."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self.headers = {**headers, "Content-Type": "application/json"}

    def call(self, method: str, path: str, status: int, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else None
        self.connection.request(method, path, body=data, headers=self.headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != status:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload)


def wait_until_quiet(amqp_uri: str, timeout: float) -> float:
    """Seconds until every event, mirror and e-mail queue stays empty for a second."""
    queues = [*topology.all_handler_queue_names(), topology.MIRROR_QUEUE, EMAIL_QUEUE]
    started = time.monotonic()
    quiet_since: float | None = None
    with Connection(amqp_uri) as connection:
        while time.monotonic() - started < timeout:
            busy = any(waiting_messages(connection, name) for name in queues)
            now = time.monotonic()
            quiet_since = None if busy else (quiet_since or now)
            if quiet_since is not None and now - quiet_since >= 1.0:
                break
            time.sleep(0.2)
    return time.monotonic() - started
