"""The orders logic over fakes of its adapters.

Payloads that break the contract are refused by the entrypoint (``mesh.typed.expose``) before
any logic runs: tests/unit/test_service_contracts.py checks them (ORDERS_BROKEN) on the real
service class and on the fake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Event, Viewer
from contracts.catalog import Reservation, ReserveRequest
from contracts.errors import Conflict, NotFound, Unavailable
from contracts.orders import (
    TRANSITIONS,
    OrderCreate,
    OrderCreated,
    OrderOut,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    OrderStatusChanged,
    StatusChange,
)
from mesh.sql import make_sessionmaker
from services.orders import logic
from services.orders.clients import Catalog
from services.orders.models import Base, Order
from tests.unit.fakes import RecordingSink

ADA, BOB = 1, 2
LAMP = 10
OWNER, STRANGER, ADMIN = (
    Viewer(user_id=ADA),
    Viewer(user_id=BOB),
    Viewer(user_id=BOB, is_admin=True),
)


class FakeCatalog(Catalog):
    """Stock and reservations in memory, with the catalog's errors and idempotency."""

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {
            LAMP: {"price": 2500, "currency": "GBP", "stock": 5}
        }
        self.reservations: dict[str, Reservation] = {}
        self.released: list[str] = []
        self.reserve_fails: Exception | None = None
        self.release_fails: Exception | None = None

    def reserve(self, request: ReserveRequest) -> Reservation:
        if request.order_ref not in self.reservations:
            product = self.products.get(request.product_id)
            if product is None:
                raise NotFound("product not found")
            if product["stock"] < request.quantity:
                raise Conflict("not enough stock")
            product["stock"] -= request.quantity
            self.reservations[request.order_ref] = Reservation(
                order_ref=request.order_ref,
                product_id=request.product_id,
                quantity=request.quantity,
                unit_price_cents=product["price"],
                currency=product["currency"],
            )
        if self.reserve_fails is not None:
            raise self.reserve_fails  # the stock was taken, but the reply is lost
        return self.reservations[request.order_ref]

    def release(self, order_ref: str) -> bool:
        if self.release_fails is not None:
            raise self.release_fails
        reservation = self.reservations.get(order_ref)
        if reservation is None or order_ref in self.released:
            return False
        self.products[reservation.product_id]["stock"] += reservation.quantity
        self.released.append(order_ref)
        return True

    def stock(self) -> int:
        return int(self.products[LAMP]["stock"])


class BrokenSink(RecordingSink):
    """The outbox insert fails, so the order's transaction rolls back."""

    def add(self, session: Session, event: Event) -> None:
        raise RuntimeError("the outbox insert failed")


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'orders.db'}", Base.metadata)


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def buy(sessions, catalog, sink) -> Callable[..., OrderOut]:
    """Place an order through ``logic.create_order`` with the fakes."""

    def do(
        quantity: int = 1,
        user_id: int = ADA,
        product_id: int = LAMP,
        events: RecordingSink | None = None,
        key: str | None = None,
    ) -> OrderOut:
        request = OrderCreate(product_id=product_id, quantity=quantity)
        return logic.create_order(sessions, events or sink, catalog, user_id, request, key)

    return do


@pytest.fixture
def order(buy) -> OrderOut:
    """One pending order of two lamps by Ada."""
    return buy(2)


def stored(sessions: sessionmaker) -> list[Order]:
    with sessions() as session:
        return list(session.query(Order).order_by(Order.id))


# ---------------------------------------------------------------- create


def test_create_stores_a_pending_order_priced_by_the_reservation(
    sessions, catalog, sink, order
) -> None:
    assert order.status == "pending"
    assert (order.user_id, order.product_id, order.quantity) == (ADA, LAMP, 2)
    assert (order.unit_price, order.total, order.currency) == (2500, 5000, "GBP")
    assert catalog.stock() == 3
    [row] = stored(sessions)
    assert list(catalog.reservations) == [row.order_ref]
    assert len(row.order_ref) == 32
    [event] = sink.events
    assert isinstance(event, OrderCreated)
    assert (event.order_id, event.user_id, event.product_id, event.quantity) == (
        order.id,
        ADA,
        LAMP,
        2,
    )


def test_unknown_product_is_not_found_and_stores_nothing(sessions, buy, sink) -> None:
    with pytest.raises(NotFound, match="product not found"):
        buy(product_id=99)
    assert stored(sessions) == [] and sink.events == []


def test_no_stock_is_a_conflict_and_stores_nothing(sessions, catalog, buy, sink) -> None:
    with pytest.raises(Conflict, match="not enough stock"):
        buy(6)
    assert stored(sessions) == [] and sink.events == []
    assert catalog.stock() == 5


def test_a_failed_insert_releases_the_reservation(sessions, catalog, buy) -> None:
    with pytest.raises(RuntimeError, match="outbox insert failed"):
        buy(2, events=BrokenSink())
    assert stored(sessions) == []
    assert catalog.released == list(catalog.reservations)
    assert catalog.stock() == 5


def test_a_reserve_without_a_reply_in_time_releases_whatever_was_taken(
    sessions, catalog, buy, sink
) -> None:
    catalog.reserve_fails = TimeoutError("catalog.reserve_stock did not answer within 5 s")
    with pytest.raises(Unavailable):
        buy(2)
    assert catalog.stock() == 5 and len(catalog.released) == 1
    assert stored(sessions) == [] and sink.events == []


def test_a_failed_compensation_is_logged_and_the_insert_error_raised(catalog, buy, caplog) -> None:
    catalog.release_fails = ConnectionError("catalog down")
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError):
        buy(events=BrokenSink())
    assert "stock not released" in caplog.text


# ---------------------------------------------------------------- read


def test_list_is_newest_first_and_only_the_users_own(sessions, buy) -> None:
    ids = [buy().id for _ in range(3)]
    buy(user_id=BOB)
    page = logic.list_orders(sessions, ADA, OrderQuery(limit=2))
    assert [o.id for o in page.items] == ids[::-1][:2]
    assert (page.limit, page.offset) == (2, 0)
    assert [o.id for o in logic.list_orders(sessions, ADA, OrderQuery(offset=2)).items] == ids[:1]
    assert logic.list_orders(sessions, 3, OrderQuery()).items == []


def test_the_owner_sees_the_order(sessions, order) -> None:
    assert logic.get_order(sessions, order.id, OWNER) == order


def test_another_user_gets_the_same_not_found_as_a_missing_order(sessions, order) -> None:
    with pytest.raises(NotFound) as other:
        logic.get_order(sessions, order.id, STRANGER)
    with pytest.raises(NotFound) as missing:
        logic.get_order(sessions, 999, STRANGER)
    assert str(other.value) == str(missing.value) == logic.ORDER_NOT_FOUND


def test_an_admin_sees_any_order(sessions, order) -> None:
    assert logic.get_order(sessions, order.id, ADMIN) == order


# ---------------------------------------------------------------- status

LEGAL = sorted((old, new) for old, targets in TRANSITIONS.items() for new in targets)
ILLEGAL = sorted(
    (old, new) for old in TRANSITIONS for new in TRANSITIONS if new not in TRANSITIONS[old]
)
PATH_TO = {
    "pending": [],
    "paid": ["paid"],
    "shipped": ["paid", "shipped"],
    "delivered": ["paid", "shipped", "delivered"],
    "cancelled": ["cancelled"],
}


def to(status: Any) -> StatusChange:
    return StatusChange(status=status)


def move_to(sessions, catalog, order_id: int, status: str) -> None:
    for step in PATH_TO[status]:
        logic.set_status(sessions, RecordingSink(), catalog, order_id, to(step))


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_a_legal_transition_applies_and_is_announced(sessions, catalog, order, old, new) -> None:
    move_to(sessions, catalog, order.id, old)
    sink = RecordingSink()
    changed = logic.set_status(sessions, sink, catalog, order.id, to(new))
    assert changed.status == new
    assert changed.updated_at >= order.updated_at
    [event] = sink.events
    assert isinstance(event, OrderStatusChanged)
    assert (event.order_id, event.user_id, event.old_status, event.new_status) == (
        order.id,
        ADA,
        old,
        new,
    )


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_an_illegal_transition_is_a_conflict(sessions, catalog, order, old, new) -> None:
    move_to(sessions, catalog, order.id, old)
    sink = RecordingSink()
    with pytest.raises(Conflict):
        logic.set_status(sessions, sink, catalog, order.id, to(new))
    assert sink.events == []
    assert logic.get_order(sessions, order.id, OWNER).status == old


def test_set_status_of_a_missing_order_is_not_found(sessions, catalog) -> None:
    with pytest.raises(NotFound):
        logic.set_status(sessions, RecordingSink(), catalog, 999, to("paid"))


def test_cancel_releases_the_stock_once(sessions, catalog, order) -> None:
    sink = RecordingSink()
    cancelled = logic.cancel_order(sessions, sink, catalog, order.id, OWNER)
    assert cancelled.status == "cancelled"
    assert catalog.stock() == 5
    assert [(e.old_status, e.new_status) for e in sink.events] == [("pending", "cancelled")]
    with pytest.raises(Conflict):
        logic.cancel_order(sessions, sink, catalog, order.id, OWNER)
    assert catalog.stock() == 5 and len(catalog.released) == 1
    assert len(sink.events) == 1


def test_cancel_of_a_paid_order_by_an_admin_releases_the_stock(sessions, catalog, order) -> None:
    move_to(sessions, catalog, order.id, "paid")
    cancelled = logic.cancel_order(sessions, RecordingSink(), catalog, order.id, ADMIN)
    assert cancelled.status == "cancelled" and catalog.stock() == 5


def test_set_status_to_cancelled_releases_the_stock(sessions, catalog, order) -> None:
    logic.set_status(sessions, RecordingSink(), catalog, order.id, to("cancelled"))
    assert catalog.stock() == 5


def test_another_user_cannot_cancel(sessions, catalog, order) -> None:
    with pytest.raises(NotFound, match=logic.ORDER_NOT_FOUND):
        logic.cancel_order(sessions, RecordingSink(), catalog, order.id, STRANGER)
    assert logic.get_order(sessions, order.id, OWNER).status == "pending"
    assert catalog.stock() == 3


def test_a_shipped_order_cannot_be_cancelled_and_keeps_its_stock(sessions, catalog, order) -> None:
    move_to(sessions, catalog, order.id, "shipped")
    with pytest.raises(Conflict):
        logic.cancel_order(sessions, RecordingSink(), catalog, order.id, OWNER)
    assert catalog.released == [] and catalog.stock() == 3


def test_a_failed_release_keeps_the_cancel_and_its_event_names_the_reservation(
    sessions, catalog, order, caplog
) -> None:
    catalog.release_fails = ConnectionError("catalog down")
    sink = RecordingSink()
    with caplog.at_level(logging.ERROR):
        cancelled = logic.cancel_order(sessions, sink, catalog, order.id, OWNER)
    assert cancelled.status == "cancelled" and catalog.stock() == 3
    assert "stock not released" in caplog.text
    # The catalog releases from this event: the reservation is named in it.
    (event,) = sink.events
    assert event.new_status == "cancelled" and event.order_ref in catalog.reservations


def test_order_ref_states_give_each_stored_orders_status(sessions, catalog, order) -> None:
    (ref,) = catalog.reservations
    asked = OrderRefs(refs=[ref, "never-stored"])
    assert logic.order_ref_states(sessions, asked) == [
        OrderRefState(order_ref=ref, status="pending")
    ]
    logic.cancel_order(sessions, RecordingSink(), catalog, order.id, OWNER)
    # Settling must learn of the cancel: a cancelled order's reservation is released, not kept.
    assert logic.order_ref_states(sessions, asked) == [
        OrderRefState(order_ref=ref, status="cancelled")
    ]
    assert logic.order_ref_states(sessions, OrderRefs(refs=[])) == []


# ---------------------------------------------------------------- expiry and cap


def _minutes(n: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=n)


def test_a_pending_order_expires_through_the_state_machine(sessions, catalog, buy) -> None:
    late, paid = buy(2), buy(1)
    logic.set_status(sessions, RecordingSink(), catalog, paid.id, StatusChange(status="paid"))
    sink = RecordingSink()
    assert logic.expire_pending(sessions, sink, catalog, _minutes(-1)) == 0  # not old enough
    assert logic.expire_pending(sessions, sink, catalog, _minutes(1)) == 1
    assert logic.get_order(sessions, late.id, OWNER).status == "cancelled"
    assert logic.get_order(sessions, paid.id, OWNER).status == "paid"
    (event,) = sink.events
    assert isinstance(event, OrderStatusChanged)
    assert (event.order_id, event.old_status, event.new_status) == (late.id, "pending", "cancelled")
    assert catalog.released == [event.order_ref] and catalog.stock() == 4
    assert logic.expire_pending(sessions, sink, catalog, _minutes(1)) == 0  # once


def test_an_order_paid_meanwhile_is_not_expired(sessions, catalog, order) -> None:
    """The batch is chosen first; an order paid before its turn must stay paid."""
    (chosen,) = logic.expired_pending(sessions, _minutes(1))
    logic.set_status(sessions, RecordingSink(), catalog, order.id, StatusChange(status="paid"))
    sink = RecordingSink()
    assert logic.expire_order(sessions, sink, catalog, chosen) is False
    assert logic.get_order(sessions, order.id, OWNER).status == "paid"
    assert sink.events == [] and catalog.released == []


def test_past_the_pending_cap_nothing_is_reserved(sessions, catalog, buy) -> None:
    catalog.products[LAMP]["stock"] = 50
    buy(), buy()
    request = OrderCreate(product_id=LAMP, quantity=1)
    with pytest.raises(Conflict, match="2 orders awaiting payment"):
        logic.create_order(sessions, RecordingSink(), catalog, ADA, request, max_pending=2)
    assert catalog.stock() == 48 and len(catalog.reservations) == 2
    logic.create_order(sessions, RecordingSink(), catalog, BOB, request, max_pending=2)


def test_with_no_cap_orders_take_no_pending_slot(sessions, catalog) -> None:
    catalog.products[LAMP]["stock"] = 50
    request = OrderCreate(product_id=LAMP, quantity=1)
    for _ in range(12):
        logic.create_order(sessions, RecordingSink(), catalog, ADA, request, max_pending=0)
    with sessions() as session:
        slots = session.scalars(select(Order.pending_slot)).all()
    assert slots == [None] * 12


def test_a_retry_with_the_same_idempotency_key_returns_the_first_order(
    sessions, catalog, buy, sink
) -> None:
    first = buy(2, key="attempt-1")
    again = buy(2, key="attempt-1")
    assert again == first
    assert catalog.stock() == 3 and len(stored(sessions)) == 1 and len(sink.events) == 1


def test_an_idempotency_key_is_per_user_and_per_order(sessions, catalog, buy) -> None:
    buy(1, key="k")
    assert buy(1, user_id=BOB, key="k").user_id == BOB  # another user's key is theirs
    with pytest.raises(Conflict, match="different order"):
        buy(2, key="k")
    assert catalog.stock() == 3
