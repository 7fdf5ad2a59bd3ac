"""Benchmark: what the mesh's framework costs per message, before a service does any work.

Run against a running mesh (``make run BENCH=1``): ``make bench-floor``. It starts
``tests.bench.floor_service`` (entrypoints that do nothing) under ``nameko run`` on the
mesh's broker and, one message at a time from this process:
- calls a no-op RPC method, declared as the mesh declares its services and as bare nameko;
- publishes events with confirms, as the outbox relay does, to a no-op handler, the mesh's
  reliable one and nameko's own;
- calls ``orders.get_order`` on a real order: the call ``make bench``'s floor makes.

It prints the CPU per message (from /proc and this process's clock) of the service, RabbitMQ
and the caller or publisher. Then it adds up the messages one order needs on its way through
the mesh, at these no-op costs, against what ``make bench``'s POST goal allows an order: at
0.25x the throughput of ``get_order`` calls on the same saturated cores, four of its calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nameko.amqp.publish
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.constants import NON_PERSISTENT
from nameko.standalone.rpc import ClusterRpcProxy

from mesh import topology
from mesh.rpc import standalone_config
from mesh.settings import Settings, get_settings
from tests.bench import floor_service as floor
from tests.bench.common import Client, prepare
from tests.bench.procs import ROOT, cpu_seconds, mesh_processes

RPC_CALLS_PER_ORDER = 2  # gateway -> orders.create_order, orders -> catalog.reserve_stock
EVENTS_PER_ORDER = 2  # order.created, product.updated (the stock)
DELIVERIES_PER_ORDER = 6  # each to analytics, notifications and the mirror
GOAL_RATIO = 0.25  # make bench: POST /api/orders at 8 clients >= 0.25x the get_order floor


@dataclass(frozen=True)
class Cost:
    """Milliseconds of CPU per message."""

    service: float
    rabbitmq: float
    caller: float
    wall: float  # milliseconds per message, one at a time

    @property
    def total(self) -> float:
        return self.service + self.rabbitmq + self.caller


Rows = dict[str, Cost]


def measured(count: int, pids: dict[str, int], work: Callable[[], None]) -> Cost:
    """The CPU per message that ``work`` (``count`` messages) cost each process."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    caller, wall = time.process_time(), time.perf_counter()
    work()
    caller, wall = time.process_time() - caller, time.perf_counter() - wall
    used = {name: (cpu_seconds(pid) - before[name]) * 1000 / count for name, pid in pids.items()}
    return Cost(used["service"], used["rabbitmq"], caller * 1000 / count, wall * 1000 / count)


def rpc_cost(method: Callable[[], Any], count: int, pids: dict[str, int]) -> Cost:
    for _ in range(100):  # warm up
        method()

    def calls() -> None:
        for _ in range(count):
            method()

    return measured(count, pids, calls)


def event_cost(
    settings: Settings, proxy: Any, event_type: str, count: int, pids: dict[str, int]
) -> Cost:
    """Publish ``count`` events, then wait until the service has taken them all."""
    publisher = Publisher(settings.amqp_uri, use_confirms=True, mandatory=True)
    exchange = topology.event_exchange(floor.SOURCE)
    start = proxy.bench_floor.handled_count()

    def publish_and_drain() -> None:
        for number in range(count):
            publisher.publish({"n": number}, exchange=exchange, routing_key=event_type)
        while proxy.bench_floor.handled_count() < start + count:
            time.sleep(0.05)

    return measured(count, pids, publish_and_drain)


def start_service(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(ROOT / ".venv/bin/nameko"),
        "run",
        "--config",
        "mesh/nameko.yaml",
        "tests.bench.floor_service",
    ]
    env = {**os.environ, "AMQP_URI": settings.amqp_uri}
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(proxy: Any, service: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.poll() is not None:
            sys.exit(f"the floor service exited: see {log}")
        try:
            proxy.bench_floor.noop.call_async().result()
            return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"the floor service did not answer in 60 s: see {log}")


def remove_queues(settings: Settings) -> None:
    """The floor service's queues, so that nothing of it outlives the run."""
    names = [f"rpc-{floor.NAME}", f"rpc-{floor.BARE_NAME}"]
    handlers = (
        (floor.MESH_EVENT, floor.NAME, "on_pinged"),
        (floor.BARE_EVENT, floor.BARE_NAME, "on_pinged_bare"),
    )
    for event_type, service, method in handlers:
        queue = topology.handler_queue_name(floor.SOURCE, event_type, service, method)
        names += [queue, f"{queue}.retry", f"{queue}.dlq"]
    with Connection(settings.amqp_uri) as connection:
        channel = connection.default_channel
        for name in names:
            channel.queue_delete(name)
        channel.exchange_delete(topology.event_exchange(floor.SOURCE).name)


def get_order_cost(settings: Settings, proxy: Any, count: int, pids: dict[str, int]) -> Cost:
    """``orders.get_order`` of a real order, as ``make bench``'s floor calls it."""
    headers, user_id, product_id = prepare(settings, settings.gateway_url)
    body = {"product_id": product_id, "quantity": 1}
    order = Client(settings.gateway_url, headers).call("POST", "/api/orders", 201, body)
    viewer = {"user_id": user_id, "is_admin": False}
    return rpc_cost(lambda: proxy.orders.get_order(order["id"], viewer), count, pids)


def print_row(label: str, cost: Cost) -> None:
    cells = " ".join(
        f"{value:9.3f}"
        for value in (cost.service, cost.rabbitmq, cost.caller, cost.total, cost.wall)
    )
    print(f"  {label:40s} {cells}")


def measure(settings: Settings, proxy: Any, n: int, pids: dict[str, int], orders: int) -> Rows:
    """Every row, in the order printed."""
    return {
        "RPC call, mesh (mesh.rpc.rpc)": rpc_cost(proxy.bench_floor.noop, n, pids),
        "RPC call, bare nameko": rpc_cost(proxy.bench_floor_bare.noop, n, pids),
        "event, mesh (reliable handler)": event_cost(settings, proxy, floor.MESH_EVENT, n, pids),
        "event, bare nameko handler": event_cost(settings, proxy, floor.BARE_EVENT, n, pids),
        "orders.get_order (make bench's floor)": get_order_cost(
            settings, proxy, n, {**pids, "service": orders}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    settings = get_settings()
    processes = mesh_processes()
    log = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "floor_service.log"
    service = start_service(settings, log)
    pids = {"service": service.pid, "rabbitmq": processes["rabbitmq (beam.smp)"][0]}
    # Requests transient and confirmed, as the gateway's (mesh.rpc).
    nameko.amqp.publish.Publisher.delivery_mode = NON_PERSISTENT
    try:
        with ClusterRpcProxy(standalone_config(settings.amqp_uri), timeout=30) as proxy:
            wait_ready(proxy, service, log)
            rows = measure(settings, proxy, args.messages, pids, processes["orders"][0])
    finally:
        service.terminate()
        service.wait(timeout=30)
        remove_queues(settings)
    print(
        f"ms of CPU per message, {args.messages} one at a time (caller: the client or the "
        "publisher; wall: elapsed per message)"
    )
    heads = " ".join(f"{head:>9s}" for head in ("service", "rabbitmq", "caller", "total", "wall"))
    print(f"  {'':40s} {heads}")
    for label, cost in rows.items():
        print_row(label, cost)
    report(rows)


def report(rows: Rows) -> None:
    rpc, event = rows["RPC call, mesh (mesh.rpc.rpc)"], rows["event, mesh (reliable handler)"]
    floor_call = rows["orders.get_order (make bench's floor)"]
    messages = (
        RPC_CALLS_PER_ORDER * rpc.total
        + EVENTS_PER_ORDER * event.caller
        + DELIVERIES_PER_ORDER * (event.service + event.rabbitmq)
    )
    allowed = floor_call.total / GOAL_RATIO
    print(
        f"An order's messages at no-op cost ({RPC_CALLS_PER_ORDER} RPC calls, {EVENTS_PER_ORDER} "
        f"events published, {DELIVERIES_PER_ORDER} deliveries): {messages:.1f} ms of CPU,\n"
        "before its HTTP request, SQL, MongoDB writes and e-mail task."
    )
    print(
        f"make bench's POST goal allows an order {1 / GOAL_RATIO:.0f} get_order calls: "
        f"{allowed:.1f} ms of CPU ({messages / allowed:.0%} of it taken by the messages)."
    )


if __name__ == "__main__":
    main()
