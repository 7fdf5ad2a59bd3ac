"""Benchmark: the CPU an order's database work costs, in process, on SQLite.

Run anywhere (no mesh needed): ``make bench-sql``. On scratch SQLite databases made from the
services' models, one call at a time, it runs the storage of an order's path: the catalog's
``reserve_stock`` (stock taken, reservation and product.updated stored) and the orders storage
of ``create_order`` (a catalog that answers at once stands in for the RPC call), each with
the outbox relay pass that publishes its event (to a publish that does nothing), then alone;
and analytics counting an ``order.created`` once.
It prints the CPU per call (``time.process_time``), best and median of ``--runs`` runs of
``--calls``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from contracts.catalog import Reservation, ReserveRequest
from contracts.orders import OrderCreate, OrderCreated
from mesh.outbox import OutboxHandle, publish_pending
from mesh.sql import make_sessionmaker
from services.analytics import ledger
from services.analytics import models as analytics_models
from services.catalog import models as catalog_models
from services.catalog import stock
from services.orders import logic as orders
from services.orders import models as orders_models

RELAYED = "  and the relay pass that publishes its event"


class AnsweringCatalog:
    """The catalog's RPC answered at once: the orders side's own work only."""

    def reserve(self, request: ReserveRequest) -> Reservation:
        return Reservation(
            order_ref=request.order_ref,
            product_id=request.product_id,
            quantity=request.quantity,
            unit_price_cents=999,
            currency="EUR",
        )

    def release(self, order_ref: str) -> bool:
        return True


def _unwatched(_session: Session) -> None:
    """The relay's wake-up on commit: nothing to wake here."""


Calls = list[tuple[str, Callable[[], Any]]]
# Relayed first, while the outbox is empty: each pass then publishes exactly one event.
RELAYED = " + relay pass"


def catalog_calls(folder: Path) -> Calls:
    sessions = make_sessionmaker(f"sqlite:///{folder}/catalog.db", catalog_models.Base.metadata)
    with sessions() as session, session.begin():
        product = catalog_models.Product(
            name="Bench item", price_cents=999, currency="EUR", stock=10**9
        )
        session.add(product)
    events = OutboxHandle(catalog_models.outbox, _unwatched)

    def reserve() -> None:
        request = ReserveRequest(product_id=product.id, quantity=1, order_ref=uuid.uuid4().hex)
        stock.reserve_stock(sessions, events, request)

    return [
        ("catalog reserve_stock" + RELAYED, _and_relay(reserve, sessions, catalog_models.outbox)),
        ("  alone", reserve),
    ]


def orders_calls(folder: Path) -> Calls:
    sessions = make_sessionmaker(f"sqlite:///{folder}/orders.db", orders_models.Base.metadata)
    events = OutboxHandle(orders_models.outbox, _unwatched)
    request = OrderCreate(product_id=1, quantity=1)

    def create() -> None:
        key = uuid.uuid4().hex
        orders.create_order(sessions, events, AnsweringCatalog(), 1, request, key, max_pending=0)

    return [
        ("orders create_order" + RELAYED, _and_relay(create, sessions, orders_models.outbox)),
        ("  alone (its storage)", create),
    ]


def analytics_calls(folder: Path) -> Calls:
    sessions = make_sessionmaker(f"sqlite:///{folder}/analytics.db", analytics_models.Base.metadata)
    order_ids = itertools.count(1)

    def count() -> None:
        event = OrderCreated(
            order_id=next(order_ids),
            user_id=1,
            product_id=1,
            quantity=1,
            total_cents=999,
            currency="EUR",
        )
        assert ledger.count(sessions, event)

    return [("analytics counts order.created", count)]


def _and_relay(call: Callable[[], Any], sessions: sessionmaker, table: Any) -> Callable[[], Any]:
    """``call``, then the relay pass that publishes its one event."""

    def both() -> None:
        call()
        assert publish_pending(sessions, table, lambda _row: None) == 1

    return both


def cpu_ms(call: Callable[[], Any], calls: int, runs: int) -> tuple[float, float]:
    """(best, median) CPU milliseconds per call over ``runs`` runs."""
    for _ in range(100):
        call()
    per_run = []
    for _ in range(runs):
        started = time.process_time()
        for _ in range(calls):
            call()
        per_run.append((time.process_time() - started) * 1000 / calls)
    return min(per_run), statistics.median(per_run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU per call on SQLite, in process: best and median of {args.runs} x {args.calls}")
    with tempfile.TemporaryDirectory(prefix="bench-sql-") as folder:
        calls = [*catalog_calls(Path(folder)), *orders_calls(Path(folder))]
        for label, call in [*calls, *analytics_calls(Path(folder))]:
            best, median = cpu_ms(call, args.calls, args.runs)
            print(f"  {label:36s} best {best:6.3f} ms  median {median:6.3f} ms")


if __name__ == "__main__":
    main()
