"""Benchmark: what a persistent RPC request costs RabbitMQ against a transient one.

Run against a running mesh (``make run``): ``.venv/bin/python -m tests.bench.rpc_delivery``.
One client calls ``orders.get_order`` (an order that does not exist: the answer is a
NotFound, the same message traffic) ``--calls`` times with persistent requests, then with
transient ones, ``--rounds`` times each in turn, and prints the CPU RabbitMQ, orders and the
client spent per call (from /proc) and the wall time per call. The mesh publishes its RPC
requests and replies transient (``mesh.rpc``); this shows what that saves the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import nameko.amqp.publish
from nameko.constants import NON_PERSISTENT, PERSISTENT
from nameko.standalone.rpc import ClusterRpcProxy

from contracts.errors import NotFound
from mesh.errors import register_remote_errors
from mesh.rpc import standalone_config
from mesh.settings import get_settings
from tests.bench.procs import cpu_seconds, mesh_processes

MODES = {"persistent": PERSISTENT, "transient": NON_PERSISTENT}
MISSING_ORDER = 2**31 - 1
VIEWER = {"user_id": 1, "is_admin": True}


def calls(proxy: ClusterRpcProxy, count: int) -> None:
    for _ in range(count):
        with contextlib.suppress(NotFound):
            proxy.orders.get_order(MISSING_ORDER, VIEWER)


def measure(uri: str, mode: int, count: int, pids: dict[str, int]) -> dict[str, float]:
    """Milliseconds per call: CPU of each of ``pids``, the client's CPU, and wall time."""
    nameko.amqp.publish.Publisher.delivery_mode = mode  # this process's requests only
    with ClusterRpcProxy(standalone_config(uri), timeout=10) as proxy:
        calls(proxy, 100)  # warm up
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client, wall = time.process_time(), time.perf_counter()
        calls(proxy, count)
        client, wall = time.process_time() - client, time.perf_counter() - wall
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    figures = {name: seconds * 1000 / count for name, seconds in used.items()}
    return {**figures, "client": client * 1000 / count, "wall": wall * 1000 / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    register_remote_errors()
    processes = mesh_processes()
    pids = {"rabbitmq": processes["rabbitmq (beam.smp)"][0], "orders": processes["orders"][0]}
    print(f"ms per orders.get_order call, {args.calls} calls a run, one client")
    print(f"{'requests':12s} {'rabbitmq':>9s} {'orders':>9s} {'client':>9s} {'wall':>9s}")
    for _ in range(args.rounds):
        for name, mode in MODES.items():
            row = measure(get_settings().amqp_uri, mode, args.calls, pids)
            cells = " ".join(f"{row[k]:9.3f}" for k in ("rabbitmq", "orders", "client", "wall"))
            print(f"{name:12s} {cells}")


if __name__ == "__main__":
    main()
