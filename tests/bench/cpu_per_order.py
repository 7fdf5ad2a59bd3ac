"""Benchmark: CPU per order of every process, with orders placed one after another.

Run against a mesh started with ``make run BENCH=1``: ``make bench-cpu`` (``ORDERS=300``).
One client on one keep-alive connection, so the figures are the work an order costs, not
the cost of contention; the window ends when every queue has drained (the e-mails too).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from mesh.settings import get_settings
from tests.bench.common import Client, prepare, wait_until_quiet
from tests.bench.procs import cpu_times, cpu_used, mesh_processes

WARM_UP = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    args = parser.parse_args()
    settings = get_settings()
    headers, _, product_id = prepare(settings, settings.gateway_url)
    client = Client(settings.gateway_url, headers)
    body = {"product_id": product_id, "quantity": 1}

    def order() -> float:
        client.headers["Idempotency-Key"] = uuid.uuid4().hex
        started = time.perf_counter()
        client.call("POST", "/api/orders", 201, body)
        return time.perf_counter() - started

    for _ in range(WARM_UP):
        order()
    wait_until_quiet(settings.amqp_uri, 30)
    processes = mesh_processes()
    before = cpu_times(processes)
    took = [order() for _ in range(args.orders)]
    wait_until_quiet(settings.amqp_uri, 60)
    used = cpu_used(processes, before, cpu_times(processes))
    print(
        f"{args.orders} orders, one at a time: POST /api/orders p50 "
        f"{statistics.median(took) * 1000:.1f} ms"
    )
    print(f"  {'process':24s} {'ms/order':>9s}")
    for name, seconds in sorted(used.items()):
        print(f"  {name:24s} {seconds * 1000 / args.orders:9.2f}")
    print(f"  {'total':24s} {sum(used.values()) * 1000 / args.orders:9.2f}")


if __name__ == "__main__":
    main()
