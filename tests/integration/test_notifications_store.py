"""Notifications logic and the e-mail actor against the embedded MongoDB server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymongo.database import Database

from contracts.catalog import FieldChange, ProductUpdated
from contracts.notifications import EMAIL_QUEUE, SEND_EMAIL_ACTOR
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from mesh.clients import make_mongo
from mesh.errors import InvalidInput, NotFound
from mesh.settings import Settings
from services.notifications import actors, logic, messages
from tests.unit.fakes import RecordingTasks

USER = {"id": 5, "email": "eve@example.com", "name": "Eve"}


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


def test_an_event_handled_twice_stores_one_notification_and_one_email(db: Database) -> None:
    tasks = RecordingTasks()
    event = UserRegistered(user_id=5)
    first = logic.record(db, tasks, event, messages.welcome(event, USER))
    second = logic.record(db, tasks, event, messages.welcome(event, USER))
    assert first["_id"] == second["_id"]
    assert db[logic.COLLECTION].count_documents({"event_id": str(event.event_id)}) == 1
    assert tasks.sent == [(EMAIL_QUEUE, SEND_EMAIL_ACTOR, (logic.notification_key(event, 5),))]


def test_list_is_mine_newest_first_and_limited(db: Database) -> None:
    tasks = RecordingTasks()
    events = []
    for _ in range(3):
        event = UserRegistered(user_id=5)
        logic.record(db, tasks, event, messages.welcome(event, USER))
        events.append(str(event.event_id))
        time.sleep(0.01)
    other = UserRegistered(user_id=6)
    logic.record(db, tasks, other, messages.welcome(other, {**USER, "id": 6}))

    listed = logic.list_for_user(db, 5, 2)
    assert [n["event_id"] for n in listed] == events[::-1][:2]
    assert all(n["user_id"] == 5 for n in listed)
    assert listed[0]["created_at"].endswith("Z")


@pytest.mark.parametrize(("user_id", "limit"), [(0, 5), (5, 0), (5, 51), ("5", 5), (5, "x")])
def test_list_refuses_bad_arguments(db: Database, user_id: object, limit: object) -> None:
    with pytest.raises(InvalidInput):
        logic.list_for_user(db, user_id, limit)


def test_the_email_is_written_once(db: Database, settings: Settings) -> None:
    event = UserRegistered(user_id=5)
    logic.record(db, RecordingTasks(), event, messages.welcome(event, USER))
    key = logic.notification_key(event, 5)
    assert actors.deliver_email(db, settings, key) is True
    assert actors.deliver_email(db, settings, key) is False
    files = list((settings.mesh_var_dir / "mail").glob("*.eml"))
    assert [f.name for f in files] == [f"{key}.eml"]
    text = files[0].read_text()
    assert "To: eve@example.com" in text and "Welcome to the mesh" in text


def test_the_email_of_an_unknown_event_is_retried_not_dropped(
    db: Database, settings: Settings
) -> None:
    with pytest.raises(LookupError):
        actors.deliver_email(db, settings, "no-such-event")


class FakeCatalog:
    """The catalog RPC calls notify_wishlisters makes."""

    def __init__(self, products: dict[int, dict[str, Any]], wishlists: dict[int, list[int]]):
        self.products, self.wishlists = products, wishlists

    def get_product(self, product_id: int) -> dict[str, Any]:
        if product_id not in self.products:
            raise NotFound("product not found")
        return self.products[product_id]

    def wishlisted_by(self, product_id: int) -> list[int]:
        return self.wishlists.get(product_id, [])


class FakeUsers:
    def get_user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "email": f"u{user_id}@example.com", "name": f"U{user_id}"}


LAMP = {"id": 9, "name": "Lamp", "price_cents": 1500, "currency": "EUR"}


def price_change(old: int, new: int) -> ProductUpdated:
    return ProductUpdated(
        product_id=9, change="updated", changes={"price_cents": FieldChange(old=old, new=new)}
    )


def test_a_price_drop_notifies_each_wishlister_once(db: Database) -> None:
    tasks, catalog = RecordingTasks(), FakeCatalog({9: LAMP}, {9: [1, 2]})
    event = price_change(2000, 1500)
    assert messages.notify_wishlisters(db, tasks, catalog, FakeUsers(), event) == 2
    assert messages.notify_wishlisters(db, tasks, catalog, FakeUsers(), event) == 2  # redelivery
    docs = list(db[logic.COLLECTION].find({"event_id": str(event.event_id)}))
    assert sorted(d["userId"] for d in docs) == [1, 2]
    assert all(d["reason"] == "price_drop" and "15.00 EUR" in d["title"] for d in docs)
    assert len(tasks.sent) == 2


def test_a_price_rise_or_a_deleted_product_notifies_nobody(db: Database) -> None:
    tasks = RecordingTasks()
    rise = price_change(1000, 1500)
    assert (
        messages.notify_wishlisters(db, tasks, FakeCatalog({9: LAMP}, {9: [1]}), FakeUsers(), rise)
        == 0
    )
    gone = FakeCatalog({}, {9: [1]})
    assert messages.notify_wishlisters(db, tasks, gone, FakeUsers(), price_change(2000, 1)) == 0
    assert tasks.sent == []


def test_order_notifications_are_listed_by_order(db: Database) -> None:
    tasks = RecordingTasks()
    created = OrderCreated(order_id=31, user_id=5, product_id=9, quantity=2)
    paid = OrderStatusChanged(
        order_id=31, user_id=5, order_ref="ref-31", old_status="pending", new_status="paid"
    )
    logic.record(db, tasks, created, messages.order_placed(created, USER))
    time.sleep(0.01)
    logic.record(db, tasks, paid, messages.order_status(paid, USER))
    listed = logic.for_order(db, 31)
    assert [n["type"] for n in listed] == ["order.status_changed", "order.created"]
    assert {n["order_id"] for n in listed} == {31}
    assert logic.for_order(db, 32) == []
