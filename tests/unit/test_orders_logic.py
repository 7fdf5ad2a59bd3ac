from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Event
from contracts.orders import TRANSITIONS, OrderCreated, OrderStatusChanged
from mesh.errors import Conflict, InvalidInput, NotFound, Unavailable
from mesh.sql import make_sessionmaker
from services.orders import logic
from services.orders.clients import Catalog, Users
from services.orders.models import Base, Order
from tests.unit.fakes import RecordingSink

ADA, BOB = 1, 2
LAMP = 10


class FakeCatalog(Catalog):
    """Stock and reservations in memory, with the catalog's errors and idempotency."""

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {
            LAMP: {"price": 2500, "currency": "GBP", "stock": 5}
        }
        self.reservations: dict[str, dict[str, Any]] = {}
        self.released: list[str] = []
        self.reserve_fails: Exception | None = None
        self.release_fails: Exception | None = None

    def reserve(self, payload: dict[str, Any]) -> dict[str, Any]:
        ref, product_id, quantity = payload["order_ref"], payload["product_id"], payload["quantity"]
        if ref not in self.reservations:
            product = self.products.get(product_id)
            if product is None:
                raise NotFound("product not found")
            if product["stock"] < quantity:
                raise Conflict("not enough stock")
            product["stock"] -= quantity
            self.reservations[ref] = {
                "order_ref": ref,
                "product_id": product_id,
                "quantity": quantity,
                "unit_price_cents": product["price"],
                "currency": product["currency"],
            }
        if self.reserve_fails is not None:
            raise self.reserve_fails  # the stock was taken, but the reply is lost
        return dict(self.reservations[ref])

    def release(self, order_ref: str) -> bool:
        if self.release_fails is not None:
            raise self.release_fails
        reservation = self.reservations.get(order_ref)
        if reservation is None or order_ref in self.released:
            return False
        self.products[reservation["product_id"]]["stock"] += reservation["quantity"]
        self.released.append(order_ref)
        return True

    def stock(self) -> int:
        return int(self.products[LAMP]["stock"])


class FakeUsers(Users):
    def __init__(self, *user_ids: int) -> None:
        self.user_ids = set(user_ids)
        self.calls = 0

    def confirm_later(self, user_id: int) -> Callable[[], None]:
        self.calls += 1
        known = user_id in self.user_ids

        def confirm() -> None:
            if not known:
                raise NotFound(f"user {user_id} not found")

        return confirm


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
def users() -> FakeUsers:
    return FakeUsers(ADA, BOB)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def buy(sessions, catalog, users, sink) -> Callable[..., dict[str, Any]]:
    """Place an order through ``logic.create_order`` with the fakes."""

    def do(
        quantity: Any = 1,
        user_id: Any = ADA,
        product_id: Any = LAMP,
        events: RecordingSink | None = None,
        key: Any = None,
    ) -> dict[str, Any]:
        payload = {"product_id": product_id, "quantity": quantity}
        return logic.create_order(sessions, events or sink, catalog, users, user_id, payload, key)

    return do


@pytest.fixture
def order(buy) -> dict[str, Any]:
    """One pending order of two lamps by Ada."""
    return buy(2)


def stored(sessions: sessionmaker) -> list[Order]:
    with sessions() as session:
        return list(session.query(Order).order_by(Order.id))


# ---------------------------------------------------------------- create


def test_create_stores_a_pending_order_priced_by_the_reservation(
    sessions, catalog, sink, order
) -> None:
    assert order["status"] == "pending"
    assert (order["user_id"], order["product_id"], order["quantity"]) == (ADA, LAMP, 2)
    assert (order["unit_price"], order["total"], order["currency"]) == (2500, 5000, "GBP")
    assert catalog.stock() == 3
    [row] = stored(sessions)
    assert list(catalog.reservations) == [row.order_ref]
    assert len(row.order_ref) == 32
    [event] = sink.events
    assert isinstance(event, OrderCreated)
    assert (event.order_id, event.user_id, event.product_id, event.quantity) == (
        order["id"],
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


def test_unknown_user_is_not_found_and_its_stock_goes_back(sessions, catalog, buy) -> None:
    with pytest.raises(NotFound, match="user not found"):
        buy(user_id=99)
    assert stored(sessions) == [] and catalog.stock() == 5


@pytest.mark.parametrize("quantity", [0, -1, 101, "2", 1e9, 2.0, None, True])
def test_a_bad_quantity_is_invalid_input_before_any_call(catalog, users, buy, quantity) -> None:
    with pytest.raises(InvalidInput) as caught:
        buy(quantity)
    assert [d["field"] for d in caught.value.details] == ["quantity"]
    assert users.calls == 0 and catalog.reservations == {}


@pytest.mark.parametrize(
    "payload",
    [
        {"product_id": "10", "quantity": 1},
        {"quantity": 1},
        {"product_id": 10, "quantity": 1, "x": 1},
        "lamp",
        None,
    ],
)
def test_a_broken_payload_is_invalid_input(sessions, catalog, users, sink, payload) -> None:
    with pytest.raises(InvalidInput):
        logic.create_order(sessions, sink, catalog, users, ADA, payload)


@pytest.mark.parametrize("user_id", [0, "1", True, None])
def test_a_malformed_user_id_is_invalid_input(buy, user_id) -> None:
    with pytest.raises(InvalidInput):
        buy(user_id=user_id)


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
    ids = [buy()["id"] for _ in range(3)]
    buy(user_id=BOB)
    page = logic.list_orders(sessions, ADA, {"limit": 2})
    assert [o["id"] for o in page["items"]] == ids[::-1][:2]
    assert (page["limit"], page["offset"]) == (2, 0)
    assert [o["id"] for o in logic.list_orders(sessions, ADA, {"offset": 2})["items"]] == ids[:1]
    assert logic.list_orders(sessions, 3, None)["items"] == []


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "5"}, {"page": 2}]
)
def test_list_refuses_out_of_bounds_queries(sessions, query) -> None:
    with pytest.raises(InvalidInput):
        logic.list_orders(sessions, ADA, query)


def test_the_owner_sees_the_order(sessions, order) -> None:
    assert logic.get_order(sessions, order["id"], ADA) == order


def test_another_user_gets_the_same_not_found_as_a_missing_order(sessions, order) -> None:
    with pytest.raises(NotFound) as other:
        logic.get_order(sessions, order["id"], BOB)
    with pytest.raises(NotFound) as missing:
        logic.get_order(sessions, 999, BOB)
    assert str(other.value) == str(missing.value) == logic.ORDER_NOT_FOUND


def test_an_admin_sees_any_order(sessions, order) -> None:
    assert logic.get_order(sessions, order["id"], BOB, is_admin=True) == order


@pytest.mark.parametrize("is_admin", [1, "true", "yes", [True]])
def test_only_true_makes_an_admin(sessions, order, is_admin) -> None:
    with pytest.raises(NotFound):
        logic.get_order(sessions, order["id"], BOB, is_admin=is_admin)


@pytest.mark.parametrize("order_id", [0, -1, "1", True, None, 2**64])
def test_a_malformed_order_id_is_not_found(sessions, order, order_id) -> None:
    with pytest.raises(NotFound):
        logic.get_order(sessions, order_id, ADA, is_admin=True)


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


def move_to(sessions, catalog, order_id: int, status: str) -> None:
    for step in PATH_TO[status]:
        logic.set_status(sessions, RecordingSink(), catalog, order_id, {"status": step})


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_a_legal_transition_applies_and_is_announced(sessions, catalog, order, old, new) -> None:
    move_to(sessions, catalog, order["id"], old)
    sink = RecordingSink()
    changed = logic.set_status(sessions, sink, catalog, order["id"], {"status": new})
    assert changed["status"] == new
    assert changed["updated_at"] >= order["updated_at"]
    [event] = sink.events
    assert isinstance(event, OrderStatusChanged)
    assert (event.order_id, event.user_id, event.old_status, event.new_status) == (
        order["id"],
        ADA,
        old,
        new,
    )


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_an_illegal_transition_is_a_conflict(sessions, catalog, order, old, new) -> None:
    move_to(sessions, catalog, order["id"], old)
    sink = RecordingSink()
    with pytest.raises(Conflict):
        logic.set_status(sessions, sink, catalog, order["id"], {"status": new})
    assert sink.events == []
    assert logic.get_order(sessions, order["id"], ADA)["status"] == old


@pytest.mark.parametrize("payload", [{"status": "lost"}, {}, {"status": None}, "paid"])
def test_set_status_refuses_a_broken_payload(sessions, catalog, order, payload) -> None:
    with pytest.raises(InvalidInput):
        logic.set_status(sessions, RecordingSink(), catalog, order["id"], payload)


def test_set_status_of_a_missing_order_is_not_found(sessions, catalog) -> None:
    with pytest.raises(NotFound):
        logic.set_status(sessions, RecordingSink(), catalog, 999, {"status": "paid"})


def test_cancel_releases_the_stock_once(sessions, catalog, order) -> None:
    sink = RecordingSink()
    cancelled = logic.cancel_order(sessions, sink, catalog, order["id"], ADA)
    assert cancelled["status"] == "cancelled"
    assert catalog.stock() == 5
    assert [(e.old_status, e.new_status) for e in sink.events] == [("pending", "cancelled")]
    with pytest.raises(Conflict):
        logic.cancel_order(sessions, sink, catalog, order["id"], ADA)
    assert catalog.stock() == 5 and len(catalog.released) == 1
    assert len(sink.events) == 1


def test_cancel_of_a_paid_order_by_an_admin_releases_the_stock(sessions, catalog, order) -> None:
    move_to(sessions, catalog, order["id"], "paid")
    cancelled = logic.cancel_order(sessions, RecordingSink(), catalog, order["id"], BOB, True)
    assert cancelled["status"] == "cancelled" and catalog.stock() == 5


def test_set_status_to_cancelled_releases_the_stock(sessions, catalog, order) -> None:
    logic.set_status(sessions, RecordingSink(), catalog, order["id"], {"status": "cancelled"})
    assert catalog.stock() == 5


def test_another_user_cannot_cancel(sessions, catalog, order) -> None:
    with pytest.raises(NotFound, match=logic.ORDER_NOT_FOUND):
        logic.cancel_order(sessions, RecordingSink(), catalog, order["id"], BOB)
    assert logic.get_order(sessions, order["id"], ADA)["status"] == "pending"
    assert catalog.stock() == 3


def test_a_shipped_order_cannot_be_cancelled_and_keeps_its_stock(sessions, catalog, order) -> None:
    move_to(sessions, catalog, order["id"], "shipped")
    with pytest.raises(Conflict):
        logic.cancel_order(sessions, RecordingSink(), catalog, order["id"], ADA)
    assert catalog.released == [] and catalog.stock() == 3


def test_a_failed_release_keeps_the_cancel_and_its_event_names_the_reservation(
    sessions, catalog, order, caplog
) -> None:
    catalog.release_fails = ConnectionError("catalog down")
    sink = RecordingSink()
    with caplog.at_level(logging.ERROR):
        cancelled = logic.cancel_order(sessions, sink, catalog, order["id"], ADA)
    assert cancelled["status"] == "cancelled" and catalog.stock() == 3
    assert "stock not released" in caplog.text
    # The catalog releases from this event: the reservation is named in it.
    (event,) = sink.events
    assert event.new_status == "cancelled" and event.order_ref in catalog.reservations


def test_known_order_refs_names_only_stored_orders(sessions, catalog, order) -> None:
    (ref,) = catalog.reservations
    assert logic.known_order_refs(sessions, [ref, "never-stored"]) == [ref]
    assert logic.known_order_refs(sessions, []) == []
    with pytest.raises(InvalidInput):
        logic.known_order_refs(sessions, "not-a-list")


def test_a_users_service_that_does_not_answer_is_unavailable_and_stock_goes_back(
    sessions, catalog, users, buy
) -> None:
    def silent(user_id: int) -> Callable[[], None]:
        def confirm() -> None:
            raise TimeoutError("users.get_user did not answer within 5 s")

        return confirm

    users.confirm_later = silent
    with pytest.raises(Unavailable):
        buy(2)
    assert stored(sessions) == [] and catalog.stock() == 5


def test_a_retry_with_the_same_idempotency_key_returns_the_first_order(
    sessions, catalog, buy, sink
) -> None:
    first = buy(2, key="attempt-1")
    again = buy(2, key="attempt-1")
    assert again == first
    assert catalog.stock() == 3 and len(stored(sessions)) == 1 and len(sink.events) == 1


def test_an_idempotency_key_is_per_user_and_per_order(sessions, catalog, buy) -> None:
    buy(1, key="k")
    assert buy(1, user_id=BOB, key="k")["user_id"] == BOB  # another user's key is theirs
    with pytest.raises(Conflict, match="different order"):
        buy(2, key="k")
    assert catalog.stock() == 3


@pytest.mark.parametrize("key", ["", "x" * 65, "nul\x00", 7])
def test_a_malformed_idempotency_key_is_invalid_input(catalog, buy, key) -> None:
    with pytest.raises(InvalidInput):
        buy(1, key=key)
    assert catalog.stock() == 5
