"""Benchmark: orders through the gateway against a bare nameko RPC loop, at 8 clients.

Run with ``make bench`` against a running mesh started with raised rate limits. It prints
throughput, p50 and p99 of: POST /api/orders, GET /api/orders/{id} cold (first read of
each order) and cached (second read), and the same read as a bare RPC loop; then the ratios.
"""

from __future__ import annotations

import argparse
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
from nameko.standalone.rpc import ClusterRpcProxy

from contracts.notifications import EMAIL_QUEUE
from mesh import topology
from mesh.cli import create_admin
from mesh.dead_letters import waiting_messages
from mesh.settings import Settings, get_settings
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--orders", type=int, default=800)
    parser.add_argument("--settle", type=float, default=180.0, help="longest wait for quiet")
    args = parser.parse_args()
    settings = get_settings()
    base = settings.gateway_url
    headers, user_id, product_id = prepare(settings, base)
    order_ids: list[int] = []

    def client() -> Client:
        return Client(base, headers)

    def post(http: Client, _: Any) -> None:
        body = {"product_id": product_id, "quantity": 1}
        order_ids.append(int(http.call("POST", "/api/orders", 201, body)["id"]))

    def get(http: Client, order_id: int) -> None:
        http.call("GET", f"/api/orders/{order_id}", 200)

    results = [
        run_clients("POST /api/orders", args.clients, list(range(args.orders)), post, client)
    ]
    # Let the orders' fan-out (notifications, e-mail, mirror) drain: the reads below should
    # not share the two cores with it.
    drained = wait_until_quiet(settings.amqp_uri, args.settle)
    print(f"fan-out of the orders drained in {drained:.1f} s")
    results.append(run_clients("GET /api/orders/{id} (cold)", args.clients, order_ids, get, client))
    results.append(
        run_clients("GET /api/orders/{id} (cached)", args.clients, order_ids, get, client)
    )

    proxies: list[Any] = []

    def make_proxy() -> Any:
        proxy = ClusterRpcProxy({"AMQP_URI": settings.amqp_uri}, timeout=10)
        proxies.append(proxy)
        return proxy.start()

    def rpc_get(proxy: Any, order_id: int) -> None:
        proxy.orders.get_order(order_id, user_id, False)

    results.append(
        run_clients("bare RPC orders.get_order", args.clients, order_ids, rpc_get, make_proxy)
    )
    for proxy in proxies:
        proxy.stop()

    for result in results:
        print(result.line())
    post_r, cold, cached, bare = results
    print(
        f"gateway cold read / bare RPC:   {cold.throughput / bare.throughput:5.2f}x (target >= 0.8)"
    )
    print(
        f"gateway cached read / bare RPC: {cached.throughput / bare.throughput:5.2f}x (target >= 2)"
    )
    p50, p99 = percentile(post_r.latencies, 50) * 1000, percentile(post_r.latencies, 99) * 1000
    print(f"POST /api/orders p50 {p50:.2f} ms (target <= 10), p99 {p99:.2f} ms (target <= 40)")


if __name__ == "__main__":
    main()
