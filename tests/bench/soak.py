"""Soak: orders at a steady rate for ten minutes against a running mesh; errors and memory.

Run with ``make soak`` against a mesh started with raised limits (``make run BENCH=1``). It
measures the highest order rate briefly (closed loop, ``--clients`` clients), unless ``RATE``
(orders per second) is given, then places orders at half of it for ``SOAK_SECONDS`` (600);
an administrator marks each order paid, as a shopper may hold only a few unpaid ones.
It prints the errors and, for every mesh program (found with ``supervisorctl status``), the
resident memory of its process tree at the start and at the end. Exit status 1 when any request
failed, an event was dead-lettered, or a program's memory grew by 10 % or more.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mesh import dead_letters
from mesh.cli import create_admin
from mesh.settings import get_settings
from tests.bench.bench_register import percentile
from tests.bench.common import PASSWORD, Client, login, prepare, wait_until_quiet
from tests.bench.procs import memory

MAX_GROWTH = 0.10
IDLE_SECONDS = 2.0


# ----------------------------------------------------------------- load


class Tally:
    """Answers of the soak, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def add(self, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies.append(seconds)
            else:
                self.errors.append(error)


class Shopper:
    """The shopper's connection, and the administrator's that marks each order paid (a
    shopper may hold only a few unpaid orders: ORDER_MAX_PENDING_PER_USER)."""

    def __init__(self, base: str, headers: dict[str, str], admin: dict[str, str]) -> None:
        self.shop, self.office = Client(base, headers), Client(base, admin)
        self.last_used = time.monotonic()

    def reconnect_if_idle(self) -> None:
        """Close connections the gateway may have closed by now (gunicorn's ``keepalive`` is
        5 s): a request on one fails before it reaches the gateway, an error of the client's."""
        if time.monotonic() - self.last_used > IDLE_SECONDS:
            self.shop.connection.close()
            self.office.connection.close()


def order_once(who: Shopper, product_id: int, tally: Tally) -> None:
    """Place one order and pay it: one soak step, timed; a failure is counted, never raised."""
    who.reconnect_if_idle()
    started = time.perf_counter()
    try:
        body = {"product_id": product_id, "quantity": 1}
        order = who.shop.call("POST", "/api/orders", 201, body)
        who.office.call("PATCH", f"/api/orders/{order['id']}", 200, {"status": "paid"})
    except Exception as exc:
        tally.add(0.0, repr(exc)[:300])
        who.shop.connection.close()
        who.office.connection.close()
        return
    finally:
        who.last_used = time.monotonic()
    tally.add(time.perf_counter() - started, None)


def measure_rate(shopper: Callable[[], Shopper], product_id: int, args: Any) -> float:
    """Orders per second ``args.clients`` clients place back to back for a few seconds."""
    tally = Tally()
    stop = time.monotonic() + args.measure

    def client() -> None:
        who = shopper()
        while time.monotonic() < stop:
            order_once(who, product_id, tally)

    started = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        for _ in range(args.clients):
            pool.submit(client)
    return len(tally.latencies) / (time.monotonic() - started)


def soak(shopper: Callable[[], Shopper], product_id: int, rate: float, args: Any) -> Tally:
    """Open loop: order number n starts at n / rate seconds, on whichever client is free."""
    tally = Tally()
    local = threading.local()
    started = time.monotonic()
    total = int(rate * args.seconds)

    def one(n: int) -> None:
        if not hasattr(local, "who"):
            local.who = shopper()
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        order_once(local.who, product_id, tally)

    def report() -> None:
        while len(tally.latencies) + len(tally.errors) < total:
            time.sleep(60)
            with tally.lock:
                ms = [s * 1000 for s in tally.latencies]
                print(
                    f"  {time.monotonic() - started:5.0f} s: {len(ms)} ok, "
                    f"{len(tally.errors)} errors, p50 {percentile(ms, 50):.1f} ms, "
                    f"p99 {percentile(ms, 99):.1f} ms",
                    flush=True,
                )

    threading.Thread(target=report, daemon=True).start()
    with ThreadPoolExecutor(args.clients * 4) as pool:
        list(pool.map(one, range(total)))
    return tally


def print_memory(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Print the table; the programs that grew by MAX_GROWTH or more."""
    grew = []
    print(f"{'program':14s} {'start MiB':>10s} {'end MiB':>10s} {'growth':>8s}")
    for program in before:
        start, end = before[program], after.get(program, 0)
        growth = (end - start) / start if start else 0.0
        print(f"{program:14s} {start / 1024:10.1f} {end / 1024:10.1f} {growth:8.1%}")
        if growth >= MAX_GROWTH:
            grew.append(program)
    total_start, total_end = sum(before.values()), sum(after.values())
    print(
        f"{'total':14s} {total_start / 1024:10.1f} {total_end / 1024:10.1f} "
        f"{(total_end - total_start) / total_start:8.1%}"
    )
    return grew


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("RATE", 0)))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--measure", type=float, default=15.0, help="seconds to measure the rate")
    parser.add_argument("--settle", type=float, default=300.0, help="longest wait for quiet")
    args = parser.parse_args()
    settings = get_settings()
    base = settings.gateway_url
    headers, _, product_id = prepare(settings, base)
    admin = f"soak-admin-{uuid.uuid4().hex[:8]}@example.com"
    create_admin(settings, admin, PASSWORD, "Soak Admin")
    office = login(base, admin)

    def shopper() -> Shopper:
        return Shopper(base, headers, office)

    rate = args.rate
    if rate <= 0:
        peak = measure_rate(shopper, product_id, args)
        rate = peak / 2
        print(f"highest order rate: {peak:.1f}/s over {args.measure:.0f} s; soak at {rate:.1f}/s")
        wait_until_quiet(settings.amqp_uri, args.settle)
    before = memory()
    print(f"soak: {rate:.1f} orders/s for {args.seconds:.0f} s, {len(before)} programs", flush=True)
    tally = soak(shopper, product_id, rate, args)
    drained = wait_until_quiet(settings.amqp_uri, args.settle)
    after = memory()

    ms = [s * 1000 for s in tally.latencies]
    print(f"orders: {len(ms)} ok, {len(tally.errors)} errors; fan-out drained in {drained:.1f} s")
    print(f"order and pay p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms")
    for error in sorted(set(tally.errors))[:10]:
        print(f"  error: {error}")
    parked = {name: n for name, n in dead_letters.counts(settings.amqp_uri).items() if n}
    print(f"dead letters: {parked or 'none'}")
    grew = print_memory(before, after)
    ok = not tally.errors and not parked and not grew
    print("soak: PASS" if ok else f"soak: FAIL (memory grew >= {MAX_GROWTH:.0%}: {grew or 'no'})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
