"""The orders logic on SQLite, PostgreSQL and MariaDB: concurrent transitions, history order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.base import Viewer
from contracts.catalog import Reservation, ReserveRequest
from contracts.errors import Conflict
from contracts.orders import OrderCreate, OrderOut, OrderQuery, OrderStatusChanged, StatusChange
from mesh.outbox import OutboxHandle
from services.orders import logic
from services.orders.clients import Catalog, Users
from services.orders.models import Base, outbox
from tests.integration.engines import SERVERS, fresh_schema
from tests.integration.test_catalog_engines import at_once

CALLERS = 8
OWNER = Viewer(user_id=1)


class CountingCatalog(Catalog):
    """Hands out reservations and counts releases; safe to share between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.released: list[str] = []

    def reserve(self, request: ReserveRequest) -> Reservation:
        return Reservation(**request.model_dump(), unit_price_cents=700, currency="EUR")

    def release(self, order_ref: str) -> bool:
        with self.lock:
            first = order_ref not in self.released
            self.released.append(order_ref)
        return first


class AnyUser(Users):
    def confirm_later(self, user_id: int) -> Callable[[], None]:
        return lambda: None


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
    return logic.create_order(sessions, events, catalog, AnyUser(), user_id, order)


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
