"""Stock reservations on SQLite.

Malformed reserve and release requests are refused by the entrypoint before any logic runs:
tests/unit/test_service_contracts.py checks them (CATALOG_BROKEN) on the real service class.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from contracts.catalog import ProductCreate, ProductOut, ProductPatch, Reservation, ReserveRequest
from contracts.errors import Conflict, NotFound
from contracts.orders import OrderRefState, OrderStatusChanged, Status
from mesh.sql import make_sessionmaker
from services.catalog import products, stock
from services.catalog.models import Base
from services.catalog.models import Reservation as ReservationRow
from tests.unit.fakes import RecordingSink


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'catalog.db'}", Base.metadata)


@pytest.fixture
def lamp(sessions: sessionmaker) -> ProductOut:
    request = ProductCreate(name="Lamp", price_cents=2500, currency="GBP", stock=3)
    return products.create_product(sessions, RecordingSink(), request)


def reserve(product_id: int, quantity: int = 1, order_ref: str = "order-0001") -> ReserveRequest:
    return ReserveRequest(product_id=product_id, quantity=quantity, order_ref=order_ref)


def stock_of(sessions: sessionmaker, product_id: int) -> int:
    return products.get_product(sessions, product_id).stock


def stock_changes(sink: RecordingSink) -> list[dict[str, Any]]:
    return [e.changes["stock"].model_dump() for e in sink.events]


def test_reserve_takes_stock_and_prices_the_reservation(sessions, lamp) -> None:
    sink = RecordingSink()
    reservation = stock.reserve_stock(sessions, sink, reserve(lamp.id, 2))
    assert reservation == Reservation(
        order_ref="order-0001",
        product_id=lamp.id,
        quantity=2,
        unit_price_cents=2500,
        currency="GBP",
    )
    assert stock_of(sessions, lamp.id) == 1
    assert [e.change for e in sink.events] == ["updated"]
    assert stock_changes(sink) == [{"old": 3, "new": 1}]


def test_not_enough_stock_is_a_conflict_and_changes_nothing(sessions, lamp) -> None:
    sink = RecordingSink()
    with pytest.raises(Conflict, match="not enough stock"):
        stock.reserve_stock(sessions, sink, reserve(lamp.id, 4))
    assert stock_of(sessions, lamp.id) == 3
    assert sink.events == []
    with sessions() as session:
        assert session.query(ReservationRow).count() == 0


def test_reserving_the_last_items_leaves_zero(sessions, lamp) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 3))
    assert stock_of(sessions, lamp.id) == 0
    with pytest.raises(Conflict):
        stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 1, "order-0002"))


def test_reserve_is_idempotent_by_order_ref(sessions, lamp) -> None:
    first = stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    sink = RecordingSink()
    again = stock.reserve_stock(sessions, sink, reserve(lamp.id, 2))
    assert again == first
    assert stock_of(sessions, lamp.id) == 1
    assert sink.events == []


def test_a_retry_after_the_stock_ran_out_still_returns_its_reservation(sessions, lamp) -> None:
    first = stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 3))
    assert stock_of(sessions, lamp.id) == 0
    sink = RecordingSink()
    assert stock.reserve_stock(sessions, sink, reserve(lamp.id, 3)) == first
    assert stock_of(sessions, lamp.id) == 0 and sink.events == []


def test_an_order_ref_cannot_reserve_other_stock(sessions, lamp) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 1))
    with pytest.raises(Conflict):
        stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    assert stock_of(sessions, lamp.id) == 2


def test_a_lost_insert_race_returns_the_winners_reservation(sessions, lamp) -> None:
    """Both callers missed each other's row before inserting; the unique key decides."""
    winner = stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 1))
    request = reserve(lamp.id, 1)
    sink = RecordingSink()
    with pytest.raises(IntegrityError):
        stock._reserve(sessions, sink, request)  # what the loser's insert runs into
    assert stock_of(sessions, lamp.id) == 2, "the loser's stock decrement rolled back"
    assert stock.reserve_stock(sessions, sink, reserve(lamp.id, 1)) == winner


@pytest.mark.parametrize("product_id", [999, 2**31 - 1])
def test_reserving_an_unknown_product_is_not_found(sessions, product_id: int) -> None:
    with pytest.raises(NotFound):
        stock.reserve_stock(sessions, RecordingSink(), reserve(product_id))


def test_reserving_a_deleted_product_is_not_found(sessions, lamp) -> None:
    products.delete_product(sessions, RecordingSink(), lamp.id)
    with pytest.raises(NotFound):
        stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id))


def test_release_gives_the_stock_back_exactly_once(sessions, lamp) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    sink = RecordingSink()
    assert stock.release_stock(sessions, sink, "order-0001") is True
    assert stock.release_stock(sessions, sink, "order-0001") is False
    assert stock_of(sessions, lamp.id) == 3
    assert stock_changes(sink) == [{"old": 1, "new": 3}]
    with sessions() as session:
        assert session.query(ReservationRow).one().released_at is not None


@pytest.mark.parametrize(("status", "released"), [("cancelled", True), ("paid", False)])
def test_a_cancelled_order_event_releases_its_stock_once(sessions, lamp, status, released) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    event = OrderStatusChanged(
        order_id=1, user_id=1, order_ref="order-0001", old_status="pending", new_status=status
    )
    assert stock.release_cancelled(sessions, RecordingSink(), event) is released
    assert stock.release_cancelled(sessions, RecordingSink(), event) is False  # redelivered
    assert stock_of(sessions, lamp.id) == (3 if released else 1)


def test_a_released_order_ref_is_refused_not_reserved_again(sessions, lamp) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    stock.release_stock(sessions, RecordingSink(), "order-0001")
    with pytest.raises(Conflict, match="released"):
        stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))
    assert stock_of(sessions, lamp.id) == 3


def test_releasing_an_unknown_order_ref_is_false(sessions) -> None:
    assert stock.release_stock(sessions, RecordingSink(), "never-reserved") is False


def _later(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


class Orders:
    """The orders service's answer to settling: these order_refs' orders, in these statuses."""

    def __init__(self, **status: Status) -> None:
        self.status = status
        self.asked: list[list[str]] = []

    def __call__(self, refs: list[str]) -> list[OrderRefState]:
        self.asked.append(refs)
        return [OrderRefState(order_ref=r, status=self.status[r]) for r in refs if r in self.status]


GRACE = -10  # minutes: settling looks at reservations taken (or checked) before now - 10 min


def _age(sessions: sessionmaker, minutes: int) -> None:
    """Make every reservation, and its last check, ``minutes`` older."""
    with sessions() as session, session.begin():
        for row in session.scalars(select(ReservationRow)):
            row.created_at -= timedelta(minutes=minutes)
            if row.checked_at is not None:
                row.checked_at -= timedelta(minutes=minutes)


def test_stale_reservations_are_settled_by_their_orders_status(sessions, lamp) -> None:
    product = products.update_product(sessions, RecordingSink(), lamp.id, ProductPatch(stock=10))
    refs = ("order-paid", "order-shipped", "order-cancelled", "order-lost")
    for ref in refs:
        stock.reserve_stock(sessions, RecordingSink(), reserve(product.id, 1, ref))
    orders = Orders(
        **{"order-paid": "paid", "order-shipped": "shipped", "order-cancelled": "cancelled"}
    )
    # Within the grace period nothing is looked at.
    assert stock.settle_stale(sessions, RecordingSink(), orders, _later(GRACE)) == (0, 0, 0)
    assert orders.asked == []
    _age(sessions, 20)
    sink = RecordingSink()
    assert stock.settle_stale(sessions, sink, orders, _later(GRACE)) == (1, 1, 2)
    assert orders.asked == [list(refs)]
    assert stock_of(sessions, lamp.id) == 8  # the cancelled and the lost order's stock is back
    assert len(sink.events) == 2
    # Kept and released ones are settled; the open one is asked again a grace period later.
    assert stock.settle_stale(sessions, RecordingSink(), orders, _later(GRACE)) == (0, 0, 0)
    _age(sessions, 20)
    assert stock.stale_refs(sessions, _later(GRACE)) == ["order-paid"]


def test_a_cancel_after_a_check_is_released_by_a_later_pass(sessions, lamp) -> None:
    """The bug: a reservation once seen held by an order was never asked about again, so the
    stock of an order cancelled later, whose release was lost, never came back."""
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2, "order-1"))
    _age(sessions, 20)
    pending = Orders(**{"order-1": "pending"})
    assert stock.settle_stale(sessions, RecordingSink(), pending, _later(GRACE)) == (0, 1, 0)
    assert stock_of(sessions, lamp.id) == 1
    # Cancelled meanwhile; its release and its event were lost. A grace period later:
    cancelled = Orders(**{"order-1": "cancelled"})
    assert stock.settle_stale(sessions, RecordingSink(), cancelled, _later(GRACE)) == (0, 0, 0)
    _age(sessions, 20)
    assert stock.settle_stale(sessions, RecordingSink(), cancelled, _later(GRACE)) == (0, 0, 1)
    assert stock_of(sessions, lamp.id) == 3
    _age(sessions, 20)
    assert stock.settle_stale(sessions, RecordingSink(), cancelled, _later(GRACE)) == (0, 0, 0)


def test_a_reservation_released_during_the_pass_is_released_once(sessions, lamp) -> None:
    """A cancel's event handler racing the pass: whichever is second finds nothing to do."""
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2, "order-1"))

    def cancel_meanwhile(refs: list[str]) -> list[OrderRefState]:
        assert stock.release_stock(sessions, RecordingSink(), "order-1") is True
        return [OrderRefState(order_ref="order-1", status="cancelled")]

    _age(sessions, 20)
    assert stock.settle_stale(sessions, RecordingSink(), cancel_meanwhile, _later(GRACE)) == (
        0,
        0,
        0,
    )
    assert stock_of(sessions, lamp.id) == 3


def test_when_orders_cannot_answer_no_stock_is_released(sessions, lamp) -> None:
    stock.reserve_stock(sessions, RecordingSink(), reserve(lamp.id, 2))

    def unreachable(refs: list[str]) -> list[OrderRefState]:
        raise ConnectionError("orders is down")

    with pytest.raises(ConnectionError):
        stock.settle_stale(sessions, RecordingSink(), unreachable, _later(1))
    assert stock_of(sessions, lamp.id) == 1
