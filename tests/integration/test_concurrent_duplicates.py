"""Concurrent duplicates on the real engines: one Idempotency-Key retried at once places one
order; one e-mail registered at once makes one user, the others get a Conflict (409)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.catalog import Reservation, ReserveRequest
from contracts.errors import Conflict
from contracts.orders import OrderCreate, OrderOut
from contracts.users import RegisterRequest, UserOut
from mesh.outbox import OutboxHandle
from services.orders import logic as orders
from services.orders import models as order_models
from services.users import logic as users
from services.users import models as user_models
from services.users.passwords import PasswordHasher
from tests.integration.engines import SERVERS, fresh_schema
from tests.integration.test_catalog_engines import at_once
from tests.integration.test_orders_engines import CountingCatalog
from tests.unit.fakes import FakeCache

CALLERS = 8
KEY = "retry-key-1"


class ReservingCatalog(CountingCatalog):
    """Records every reservation too: what stays reserved is what was never released."""

    def __init__(self) -> None:
        super().__init__()
        self.reserved: list[str] = []

    def reserve(self, request: ReserveRequest) -> Reservation:
        with self.lock:
            self.reserved.append(request.order_ref)
        return super().reserve(request)

    def held(self) -> set[str]:
        return set(self.reserved) - set(self.released)


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def order_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, order_models.Base.metadata, tmp_path) as factory:
        yield factory


@pytest.fixture(params=sorted(SERVERS))
def user_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, user_models.Base.metadata, tmp_path) as factory:
        yield factory


def rows(sessions: sessionmaker, table: object) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_concurrent_retries_with_one_key_place_one_order(order_sessions: sessionmaker) -> None:
    catalog = ReservingCatalog()
    events = OutboxHandle(order_models.outbox, on_commit=lambda _session: None)
    request = OrderCreate(product_id=3, quantity=2)
    outcomes = at_once(
        CALLERS,
        lambda _i: orders.create_order(order_sessions, events, catalog, 1, request, KEY),
    )
    assert all(isinstance(o, OrderOut) for o in outcomes), outcomes
    assert len({o.id for o in outcomes}) == 1, outcomes
    assert rows(order_sessions, order_models.Order) == 1
    assert rows(order_sessions, order_models.outbox) == 1  # one order.created
    # Every attempt that lost the race gave its stock back; only the order's stays reserved.
    with order_sessions() as session:
        (order_ref,) = session.scalars(select(order_models.Order.order_ref)).all()
    assert catalog.held() == {order_ref}


def test_a_concurrent_duplicate_registration_makes_one_user(user_sessions: sessionmaker) -> None:
    request = RegisterRequest(email="twice@example.com", password="correct-horse-9", name="Twice")
    events = OutboxHandle(user_models.outbox, on_commit=lambda _session: None)
    hasher = PasswordHasher()
    outcomes = at_once(
        CALLERS, lambda _i: users.register(user_sessions, events, FakeCache(), hasher, request)
    )
    assert sum(isinstance(o, UserOut) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, Conflict) for o in outcomes) == CALLERS - 1, outcomes
    assert rows(user_sessions, user_models.User) == 1
    assert rows(user_sessions, user_models.outbox) == 1  # one user.registered
