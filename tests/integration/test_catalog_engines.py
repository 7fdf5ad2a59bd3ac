"""The catalog on SQLite, PostgreSQL and MariaDB: the last-item race, search, wishlists."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.catalog import (
    ProductCreate,
    ProductPatch,
    ProductQuery,
    ReserveRequest,
    WishlistQuery,
)
from contracts.catalog import Reservation as ReservationOut
from contracts.errors import Conflict
from contracts.orders import OrderRefState, Status
from mesh.outbox import OutboxHandle
from services.catalog import products, stock, wishlist
from services.catalog.models import Base, Reservation, outbox
from tests.integration.engines import SERVERS, fresh_schema

BUYERS = 8


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, Base.metadata, tmp_path) as factory:
        yield factory


def at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i < n on n threads released together; results or exceptions."""
    start = threading.Barrier(n)
    outcomes: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = call(i)
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def product_with(sessions: sessionmaker, events: OutboxHandle, items: int) -> int:
    request = ProductCreate(name="Last lamp", price_cents=990, stock=items)
    return products.create_product(sessions, events, request).id


def stock_of(sessions: sessionmaker, product_id: int) -> int:
    return products.get_product(sessions, product_id).stock


def count(sessions: sessionmaker, column: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(column))) or 0)


@pytest.fixture
def events() -> OutboxHandle:
    return OutboxHandle(outbox, on_commit=lambda _session: None)


def test_only_one_buyer_gets_the_last_item(sessions: sessionmaker, events: OutboxHandle) -> None:
    product_id = product_with(sessions, events, 1)
    outcomes = at_once(
        BUYERS,
        lambda i: stock.reserve_stock(
            sessions,
            events,
            ReserveRequest(product_id=product_id, quantity=1, order_ref=f"buyer-{i:04d}"),
        ),
    )
    wins = [o for o in outcomes if isinstance(o, ReservationOut)]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(wins), len(conflicts)) == (1, BUYERS - 1), outcomes
    assert stock_of(sessions, product_id) == 0
    assert count(sessions, Reservation.id) == 1
    assert count(sessions, outbox.c.id) == 2  # created, then the one stock change


def test_one_order_ref_sent_at_once_takes_stock_once(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    product_id = product_with(sessions, events, 5)
    request = ReserveRequest(product_id=product_id, quantity=2, order_ref="the-same-order")
    outcomes = at_once(BUYERS, lambda _i: stock.reserve_stock(sessions, events, request))
    assert isinstance(outcomes[0], ReservationOut)
    assert all(o == outcomes[0] for o in outcomes), outcomes
    assert stock_of(sessions, product_id) == 3
    assert count(sessions, Reservation.id) == 1
    assert count(sessions, outbox.c.id) == 2


def test_a_reservation_is_released_once_however_many_ask(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    product_id = product_with(sessions, events, 1)
    request = ReserveRequest(product_id=product_id, quantity=1, order_ref="release-me")
    stock.reserve_stock(sessions, events, request)
    outcomes = at_once(BUYERS, lambda _i: stock.release_stock(sessions, events, "release-me"))
    assert sorted(outcomes, key=str) == [False] * (BUYERS - 1) + [True], outcomes
    assert stock_of(sessions, product_id) == 1


def test_search_patch_delete_and_wishlist(sessions: sessionmaker, events: OutboxHandle) -> None:
    names = ["100% Cotton shirt", "1000 cotton socks", "Desk_lamp", "Desk lamp", "a/b"]
    ids = [product_with(sessions, events, 1) for _ in names]
    for product_id, name in zip(ids, names, strict=True):
        products.update_product(sessions, events, product_id, ProductPatch(name=name))

    def found(q: str) -> list[str]:
        return [p.name for p in products.list_products(sessions, ProductQuery(q=q)).items]

    assert found("COTTON") == names[:2]
    assert found("0%") == names[:1]
    assert found("k_l") == ["Desk_lamp"]
    assert found("/") == ["a/b"]
    assert found("last") == []  # the old name, "Last lamp", is gone
    products.delete_product(sessions, events, ids[0])
    assert products.list_products(sessions, ProductQuery(q="cotton")).total == 1

    wishlist.wishlist_add(sessions, 7, ids[1])
    wishlist.wishlist_add(sessions, 7, ids[1])
    wishlist.wishlist_add(sessions, 8, ids[1])
    assert [i.product.id for i in wishlist.wishlist_list(sessions, 7, WishlistQuery()).items] == [
        ids[1]
    ]
    assert wishlist.wishlisted_by(sessions, ids[1]) == [7, 8]


def test_stale_reservations_are_settled_by_their_orders_status(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    product_id = product_with(sessions, events, 4)
    refs = ("order-paid", "order-delivered", "order-cancelled", "order-lost")
    for ref in refs:
        request = ReserveRequest(product_id=product_id, quantity=1, order_ref=ref)
        stock.reserve_stock(sessions, events, request)
    statuses: dict[str, Status] = {
        "order-paid": "paid",
        "order-delivered": "delivered",
        "order-cancelled": "cancelled",
    }

    def states(asked: list[str]) -> list[OrderRefState]:
        return [OrderRefState(order_ref=r, status=statuses[r]) for r in asked if r in statuses]

    now = datetime.now(UTC)
    assert stock.stale_refs(sessions, now - timedelta(minutes=10)) == []
    later = now + timedelta(minutes=1)
    assert stock.settle_stale(sessions, events, states, later) == (1, 1, 2)
    assert stock_of(sessions, product_id) == 2
    with sessions() as session:
        marks = {
            r.order_ref: (r.confirmed_at is not None, r.checked_at is not None)
            for r in session.scalars(select(Reservation))
        }
    # The delivered order keeps its stock for good; the paid one is asked about again later.
    assert marks["order-delivered"] == (True, False) and marks["order-paid"] == (False, True)
    assert stock.stale_refs(sessions, later + timedelta(minutes=1)) == ["order-paid"]


def test_replicas_settling_at_once_give_each_reservation_back_once(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    """settle_reservations runs on a timer in every catalog replica: passes may overlap."""
    product_id = product_with(sessions, events, 6)
    statuses: dict[str, Status] = {"gone-1": "cancelled", "gone-2": "cancelled", "kept": "paid"}
    for ref in (*statuses, "never-stored"):
        request = ReserveRequest(product_id=product_id, quantity=1, order_ref=ref)
        stock.reserve_stock(sessions, events, request)
    events_before = count(sessions, outbox.c.id)

    def states(asked: list[str]) -> list[OrderRefState]:
        return [OrderRefState(order_ref=r, status=statuses[r]) for r in asked if r in statuses]

    later = datetime.now(UTC) + timedelta(minutes=1)
    outcomes = at_once(3, lambda _i: stock.settle_stale(sessions, events, states, later))
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sum(o.released for o in outcomes) == 3
    assert stock_of(sessions, product_id) == 5  # 6 - 4 reserved + 3 given back, once each
    assert count(sessions, outbox.c.id) == events_before + 3  # one stock change per release
