"""The orders logic on SQLite, PostgreSQL and MariaDB: concurrent transitions, history order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.base import Viewer
from contracts.catalog import Reservation, ReserveRequest
from contracts.errors import Conflict
from contracts.orders import (
    OrderCreate,
    OrderOut,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    OrderStatusChanged,
    StatusChange,
)
from mesh.outbox import OutboxHandle
from services.orders import logic
from services.orders.clients import Catalog
from services.orders.models import Base, Order, outbox
from tests.integration.engines import SERVERS, fresh_schema
from tests.integration.test_catalog_engines import at_once

CALLERS = 8
OWNER = Viewer(user_id=1)


class CountingCatalog(Catalog):
    """Hands out reservations and counts releases; safe to share between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reserved: list[str] = []
        self.released: list[str] = []

    def reserve(self, request: ReserveRequest) -> Reservation:
        with self.lock:
            self.reserved.append(request.order_ref)
        return Reservation(**request.model_dump(), unit_price_cents=700, currency="EUR")

    def release(self, order_ref: str) -> bool:
        with self.lock:
            first = order_ref not in self.released
            self.released.append(order_ref)
        return first


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, Base.metadata, tmp_path) as factory:
        yield factory


@pytest.fixture
def events() -> OutboxHandle:
    return OutboxHandle(outbox, on_commit=lambda _session: None)


def status_events(sessions: sessionmaker) -> int:
    with sessions() as session:
        query = select(func.count()).where(outbox.c.event_type == OrderStatusChanged.type)
        return int(session.scalar(query) or 0)


def place(
    sessions: sessionmaker, events: OutboxHandle, catalog: Catalog, user_id: int = 1
) -> OrderOut:
    order = OrderCreate(product_id=3, quantity=2)
    return logic.create_order(sessions, events, catalog, user_id, order)


def test_of_concurrent_transitions_exactly_one_applies(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    catalog = CountingCatalog()
    order = place(sessions, events, catalog)
    outcomes = at_once(
        CALLERS,
        lambda _i: logic.set_status(
            sessions, events, catalog, order.id, StatusChange(status="paid")
        ),
    )
    assert sum(isinstance(o, OrderOut) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, Conflict) for o in outcomes) == CALLERS - 1, outcomes
    assert status_events(sessions) == 1
    assert logic.get_order(sessions, order.id, OWNER).status == "paid"


def test_concurrent_cancels_release_once(sessions: sessionmaker, events: OutboxHandle) -> None:
    catalog = CountingCatalog()
    order = place(sessions, events, catalog)
    outcomes = at_once(
        CALLERS, lambda _i: logic.cancel_order(sessions, events, catalog, order.id, OWNER)
    )
    assert sum(isinstance(o, OrderOut) for o in outcomes) == 1, outcomes
    assert status_events(sessions) == 1
    assert len(set(catalog.released)) == 1


def test_history_is_newest_first(sessions: sessionmaker, events: OutboxHandle) -> None:
    catalog = CountingCatalog()
    ids = [place(sessions, events, catalog).id for _ in range(5)]
    place(sessions, events, catalog, user_id=2)
    page = logic.list_orders(sessions, 1, OrderQuery(limit=3, offset=1))
    assert [o.id for o in page.items] == ids[::-1][1:4]
    assert all(o.total == 1400 and o.currency == "EUR" for o in page.items)


def refs_by_id(sessions: sessionmaker) -> dict[int, str]:
    with sessions() as session:
        return {
            order_id: ref for order_id, ref in session.execute(select(Order.id, Order.order_ref))
        }


def test_ref_states_tell_a_cancelled_order_from_a_live_one(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    catalog = CountingCatalog()
    live, gone = place(sessions, events, catalog), place(sessions, events, catalog)
    logic.cancel_order(sessions, events, catalog, gone.id, OWNER)
    refs = refs_by_id(sessions)
    asked = OrderRefs(refs=[refs[live.id], refs[gone.id], "never-stored"])
    assert logic.order_ref_states(sessions, asked) == [
        OrderRefState(order_ref=refs[live.id], status="pending"),
        OrderRefState(order_ref=refs[gone.id], status="cancelled"),
    ]


def test_processes_expiring_at_once_cancel_each_order_once(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    catalog = CountingCatalog()
    stale = [place(sessions, events, catalog) for _ in range(3)]
    paid = place(sessions, events, catalog)
    logic.set_status(sessions, events, catalog, paid.id, StatusChange(status="paid"))
    later = datetime.now(UTC) + timedelta(minutes=1)
    outcomes = at_once(CALLERS, lambda _i: logic.expire_pending(sessions, events, catalog, later))
    assert sum(outcomes) == len(stale), outcomes
    assert status_events(sessions) == len(stale) + 1  # each expiry once, and the payment
    assert sorted(catalog.released) == sorted(refs_by_id(sessions)[o.id] for o in stale)
    assert logic.get_order(sessions, paid.id, OWNER).status == "paid"


def test_orders_placed_at_once_never_pass_the_pending_cap(
    sessions: sessionmaker, events: OutboxHandle
) -> None:
    """The bug: the cap was counted before storing, so orders placed at once all passed it."""
    catalog, cap = CountingCatalog(), 3
    request = OrderCreate(product_id=3, quantity=1)

    def buy(_i: int) -> OrderOut:
        return logic.create_order(sessions, events, catalog, 1, request, max_pending=cap)

    outcomes = at_once(CALLERS, buy)
    placed = [o for o in outcomes if isinstance(o, OrderOut)]
    assert len(placed) == cap, outcomes
    assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, OrderOut))
    # Refused before reserving, or after: then its stock went back.
    assert len(catalog.reserved) - len(catalog.released) == cap
    logic.set_status(sessions, events, catalog, placed[0].id, StatusChange(status="paid"))
    assert buy(0).status == "pending"  # a slot is free again
    with pytest.raises(Conflict, match="awaiting payment"):
        buy(0)
