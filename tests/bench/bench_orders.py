"""Benchmark: the order path through the gateway against the bare RPC floor, in one run.

Run with ``make bench`` against a mesh started with raised limits (``make run BENCH=1``).
wrk (tests/bench/wrk/orders.lua, one thread) drives the HTTP runs: POST /api/orders at 1 and
8 connections, then GET /api/orders/{id} at 8: cold (every order placed above, each read once)
and cached (the same orders again). The floor is a bare RPC loop, 8 Python threads each with
its own ClusterRpcProxy calling orders.get_order, right before and right after the reads.
During the 8-client POST run two threads time each order's arrival in Redis (mirror pub/sub
and the shopper's notification stream), and /proc gives the CPU every process spent.

Prints every run, the CPU per order of every process, and the five rows of the issue with
their goals. Exit status 0 (it measures); with ``--check``, 1 when a row misses its goal.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy
from pymongo import MongoClient

from contracts.orders import OrderCreated
from mesh.settings import Settings, get_settings
from tests.bench import loadgen
from tests.bench.bench_register import percentile
from tests.bench.common import prepare, wait_until_quiet
from tests.bench.loadgen import WrkRun
from tests.bench.notify_watch import NotificationWatch
from tests.bench.procs import cpu_times, cpu_used, mesh_processes

CLIENTS = 8


@dataclass
class RpcRun:
    """The bare RPC loop's figures (same names as :class:`WrkRun`)."""

    name: str
    latencies: list[float]
    seconds: float
    errors: int

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


@dataclass
class Delivery:
    """From each order's 201 to its event and its notification in Redis, in milliseconds."""

    both: list[float]
    published: list[float]
    streamed: list[float]
    orders: int
    unseen: int  # orders whose event or notification never showed in Redis
    unstored: int  # orders without their notification in MongoDB


@dataclass
class Row:
    measure: str
    figure: str
    goal: str
    ratio: str
    ok: bool


# ----------------------------------------------------------------- runs


def bare_rpc(name: str, settings: Settings, ids: list[int], user_id: int, seconds: float) -> RpcRun:
    """CLIENTS threads, each with its own proxy, calling orders.get_order for ``seconds``."""
    viewer = {"user_id": user_id, "is_admin": False}
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors = [0] * CLIENTS
    ready = threading.Barrier(CLIENTS + 1, timeout=60)

    def client(n: int) -> None:
        with ClusterRpcProxy({"AMQP_URI": settings.amqp_uri}, timeout=10) as rpc:
            rpc.orders.get_order(ids[n % len(ids)], viewer)  # connected and warm
            ready.wait()
            end, call = time.perf_counter() + seconds, n
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    rpc.orders.get_order(ids[call % len(ids)], viewer)
                except Exception:
                    errors[n] += 1
                    continue
                latencies[n].append(time.perf_counter() - started)
                call += CLIENTS

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return RpcRun(name, [s for lane in latencies for s in lane], elapsed, sum(errors))


def wrk(name: str, base: str, env: dict[str, str], connections: int, seconds: float) -> WrkRun:
    return loadgen.run(name, base, env, connections=connections, seconds=seconds)


def write_ids(directory: Path, ids: list[int]) -> str:
    path = directory / "ids.txt"
    path.write_text("".join(f"{order_id}\n" for order_id in ids))
    return str(path)


def stored_orders(settings: Settings, user_id: int) -> set[int]:
    """The orders of ``user_id`` whose order.created notification is in MongoDB."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_uri, serverSelectionTimeoutMS=5000
    )
    try:
        found = client[settings.mongo_db]["notifications"].find(
            {"userId": user_id, "type": OrderCreated.type}, {"orderId": 1}
        )
        return {int(doc["orderId"]) for doc in found}
    finally:
        client.close()


def delivery(run: WrkRun, watch: NotificationWatch, stored: set[int]) -> Delivery:
    both, published, streamed = [], [], []
    for order_id, answered_at in run.answers:
        seen = watch.seen_at(order_id)
        if seen is None:
            continue
        both.append((seen - answered_at) * 1000)
        published.append((watch.published[order_id] - answered_at) * 1000)
        streamed.append((watch.streamed[order_id] - answered_at) * 1000)
    ids = {order_id for order_id, _ in run.answers}
    return Delivery(both, published, streamed, len(ids), len(ids) - len(both), len(ids - stored))


@dataclass
class FanOut:
    """The 8-client POST run, its deliveries, and the CPU each process spent on it."""

    run: WrkRun
    delivery: Delivery
    cpu: dict[str, float]
    processes: dict[str, list[int]]
    seconds: float  # from the first order to the end of the fan-out (queues drained)
    bench_cpu: float  # this process (the two watch threads)


def fan_out_run(
    settings: Settings, base: str, env: dict[str, str], user_id: int, args: Any
) -> FanOut:
    processes = mesh_processes()
    watch = NotificationWatch(settings.redis_url, user_id)
    watch.start()
    own = resource.getrusage(resource.RUSAGE_SELF)
    before, started = cpu_times(processes), time.monotonic()
    run = wrk(f"POST /api/orders, {CLIENTS} clients", base, env, CLIENTS, args.seconds)
    watch.wait_for({order_id for order_id, _ in run.answers}, args.settle)
    wait_until_quiet(settings.amqp_uri, args.settle)  # the e-mails too
    after, ended = cpu_times(processes), time.monotonic()
    mine = resource.getrusage(resource.RUSAGE_SELF)
    watch.stop()
    stored = stored_orders(settings, user_id)
    return FanOut(
        run=run,
        delivery=delivery(run, watch, stored),
        cpu=cpu_used(processes, before, after),
        processes=processes,
        seconds=ended - started,
        bench_cpu=(mine.ru_utime + mine.ru_stime) - (own.ru_utime + own.ru_stime),
    )


# ----------------------------------------------------------------- report


def ms(values: list[float], pct: float) -> float:
    return percentile(values, pct) if values else float("nan")


def print_runs(runs: list[WrkRun | RpcRun], floor: float) -> None:
    print(f"\n{'run':44s} {'answers':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} failed")
    for run in runs:
        failed = run.errors if isinstance(run, RpcRun) else run.failures(ok_status(run))
        print(
            f"{run.name:44s} {run.answered:7d} {run.rate:8.1f} {run.p50_ms:8.2f} "
            f"{run.p99_ms:8.2f} {failed:6d}"
        )
    for run in runs:
        if isinstance(run, WrkRun) and run.failures(ok_status(run)):
            print(f"  {run.name} failed: {run.describe_failures(ok_status(run))}")
    print(f"bare RPC floor (mean of the two loops): {floor:.1f} req/s")


def ok_status(run: WrkRun) -> int:
    return 201 if run.name.startswith("POST") else 200


def print_delivery(d: Delivery) -> None:
    print(
        f"\norder 201 -> Redis, {d.orders} orders of the {CLIENTS}-client run "
        f"(not seen in Redis: {d.unseen}; notification not in MongoDB: {d.unstored})"
    )
    for name, values in (
        ("order.created on the mirror's pub/sub", d.published),
        ("notification on the user's stream", d.streamed),
        ("both (the row below)", d.both),
    ):
        print(f"  {name:40s} p50 {ms(values, 50):7.1f} ms  p99 {ms(values, 99):7.1f} ms")


def print_cpu(fan: FanOut) -> None:
    orders = max(1, fan.run.answered)
    print(
        f"\nCPU per order, {CLIENTS}-client POST run and its fan-out ({orders} orders, "
        f"{fan.seconds:.1f} s until the queues drained; RabbitMQ and Redis also serve "
        "anything else on this machine)"
    )
    print(f"  {'process':24s} {'procs':>5s} {'CPU ms':>9s} {'ms/order':>9s}")
    for name, seconds in fan.cpu.items():
        print(
            f"  {name:24s} {len(fan.processes[name]):5d} {seconds * 1000:9.0f} "
            f"{seconds * 1000 / orders:9.2f}"
        )
    total = sum(fan.cpu.values())
    print(f"  {'total (the mesh)':24s} {'':5s} {total * 1000:9.0f} {total * 1000 / orders:9.2f}")
    for name, seconds in (("wrk (load)", fan.run.cpu_seconds), ("bench watchers", fan.bench_cpu)):
        print(f"  {name:24s} {1:5d} {seconds * 1000:9.0f} {seconds * 1000 / orders:9.2f}")


def rows(floor: float, cold: WrkRun, cached: WrkRun, one: WrkRun, fan: FanOut) -> list[Row]:
    eight, d = fan.run, fan.delivery

    def versus(run: WrkRun, goal: float) -> tuple[str, str, bool]:
        ratio = run.rate / floor
        clean = run.failures(ok_status(run)) == 0
        return f"{run.rate:.0f} req/s", f"{ratio:.2f}x", ratio >= goal and clean

    cold_fig, cold_ratio, cold_ok = versus(cold, 0.8)
    cached_fig, cached_ratio, cached_ok = versus(cached, 3.0)
    post_fig, post_ratio, post_ok = versus(eight, 0.25)
    delivered = d.unseen == 0 and d.unstored == 0 and d.orders > 0
    return [
        Row("GET /api/orders/{id} cold vs bare RPC", cold_fig, ">= 0.8x", cold_ratio, cold_ok),
        Row(
            "GET /api/orders/{id} cached vs bare RPC",
            f"{cached_fig}, p99 {cached.p99_ms:.1f} ms",
            ">= 3x, p99 <= 20 ms",
            cached_ratio,
            cached_ok and cached.p99_ms <= 20,
        ),
        Row(
            f"POST /api/orders {CLIENTS} clients vs bare RPC get_order",
            post_fig,
            ">= 0.25x",
            post_ratio,
            post_ok,
        ),
        Row(
            "POST /api/orders 1 client, p50",
            f"{one.p50_ms:.1f} ms",
            "<= 12 ms",
            f"{one.p50_ms / 12:.2f} of it",
            one.p50_ms <= 12 and one.failures(201) == 0,
        ),
        Row(
            "order 201 -> notification stored + Redis msg",
            f"p99 {ms(d.both, 99):.1f} ms",
            "<= 100 ms",
            f"{ms(d.both, 99) / 100:.2f} of it",
            delivered and ms(d.both, 99) <= 100,
        ),
    ]


def print_rows(table: list[Row]) -> None:
    print(
        "\nThe POST row compares with the bare RPC floor of orders.get_order measured in this "
        "run (a read: there is no bare RPC order placement to compare with)."
    )
    print(f"{'measure':48s} {'figure':>24s} {'goal':>20s} {'ratio':>14s} result")
    for row in table:
        result = "PASS" if row.ok else "MISS"
        print(f"{row.measure:48s} {row.figure:>24s} {row.goal:>20s} {row.ratio:>14s} {result}")


# ----------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run")
    parser.add_argument("--settle", type=float, default=180.0, help="longest wait for quiet")
    parser.add_argument(
        "--min-orders", type=int, default=1000, help="orders to read cold (more are placed)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a row misses")
    args = parser.parse_args()
    settings = get_settings()
    base = settings.gateway_url
    headers, user_id, product_id = prepare(settings, base)
    token = headers["Authorization"].removeprefix("Bearer ")
    shopper = {"BENCH_TOKEN": token, "BENCH_PRODUCT": str(product_id)}

    def post(name: str, connections: int, seconds: float) -> WrkRun:
        env = {**shopper, "BENCH_MODE": "post", "BENCH_RUN": uuid.uuid4().hex[:16]}
        return wrk(name, base, env, connections, seconds)

    warm = post("warm-up", CLIENTS, 2)
    one = post("POST /api/orders, 1 client", 1, args.seconds)
    wait_until_quiet(settings.amqp_uri, args.settle)
    env = {**shopper, "BENCH_MODE": "post", "BENCH_RUN": uuid.uuid4().hex[:16]}
    fan = fan_out_run(settings, base, env, user_id, args)
    placed = [warm, one, fan.run]
    if not fan.run.answered:
        raise SystemExit("no order was placed: is the mesh running with `make run BENCH=1`?")
    missing = args.min_orders - sum(len(run.answers) for run in placed)
    if missing > 0:  # enough orders for a cold run of a few seconds
        placed.append(post("more orders to read", CLIENTS, min(60, missing / fan.run.rate + 1)))
        wait_until_quiet(settings.amqp_uri, args.settle)
    ids = [order_id for run in placed for order_id, _ in run.answers]

    with tempfile.TemporaryDirectory(prefix="bench-ids-") as scratch:
        reads = {**shopper, "BENCH_IDS": write_ids(Path(scratch), ids)}
        rpc_before = bare_rpc(
            "bare RPC orders.get_order (before reads)", settings, ids, user_id, args.seconds
        )
        cold = wrk(
            "GET /api/orders/{id} cold",
            base,
            {**reads, "BENCH_MODE": "cold"},
            CLIENTS,
            loadgen.LONGEST,
        )
        cached = wrk(
            "GET /api/orders/{id} cached",
            base,
            {**reads, "BENCH_MODE": "cached"},
            CLIENTS,
            args.seconds,
        )
        rpc_after = bare_rpc(
            "bare RPC orders.get_order (after reads)", settings, ids, user_id, args.seconds
        )
    floor = (rpc_before.rate + rpc_after.rate) / 2

    print_runs([one, fan.run, rpc_before, cold, cached, rpc_after], floor)
    print(f"cold reads answered from the cache: {cold.hits} of {cold.answered} (should be 0)")
    print_delivery(fan.delivery)
    print_cpu(fan)
    table = rows(floor, cold, cached, one, fan)
    print_rows(table)
    if any(run.failures(ok_status(run)) for run in (one, fan.run, cold, cached)):
        print("Some answers failed (429 or 409? start the mesh with `make run BENCH=1`).")
    return 1 if args.check and not all(row.ok for row in table) else 0


if __name__ == "__main__":
    raise SystemExit(main())
