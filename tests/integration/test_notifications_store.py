"""Notifications logic and the e-mail actor against the embedded MongoDB server.

Malformed list requests are refused by the entrypoint: test_notifications_contract.py.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from contracts.catalog import FieldChange, ProductUpdated
from contracts.notifications import (
    EMAIL_QUEUE,
    SEND_EMAIL_ACTOR,
    ListRequest,
    NotificationOut,
    OrderNotificationsRequest,
)
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserOut, UserRegistered
from mesh.clients import make_mongo, make_redis
from mesh.settings import Settings, get_settings
from services.notifications import actors, logic, messages
from services.notifications.streams import UserStreams
from tests.unit.fakes import RecordingTasks
from tests.unit.service_fakes import FakeCatalog, FakeUsers

STAMP = datetime(2026, 1, 2, tzinfo=UTC)
USER = UserOut(id=5, email="eve@example.com", name="Eve", created_at=STAMP)


def outlets(tasks: RecordingTasks) -> logic.Outlets:
    """The tasks given, and the users' streams on the test Redis (test_notifications_delivery.py
    checks what is streamed)."""
    return logic.Outlets(tasks, UserStreams(make_redis(get_settings())))


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


def test_an_event_handled_twice_stores_one_notification_and_one_email(db: Database) -> None:
    tasks = RecordingTasks()
    event = UserRegistered(user_id=5)
    first = logic.record(db, outlets(tasks), event, messages.welcome(event, USER))
    second = logic.record(db, outlets(tasks), event, messages.welcome(event, USER))
    assert first["_id"] == second["_id"]
    assert db[logic.COLLECTION].count_documents({"event_id": str(event.event_id)}) == 1
    assert tasks.sent == [(EMAIL_QUEUE, SEND_EMAIL_ACTOR, (logic.notification_key(event, 5),))]


def test_list_is_mine_newest_first_and_limited(db: Database) -> None:
    tasks = RecordingTasks()
    events = []
    for _ in range(3):
        event = UserRegistered(user_id=5)
        logic.record(db, outlets(tasks), event, messages.welcome(event, USER))
        events.append(str(event.event_id))
        time.sleep(0.01)
    other = UserRegistered(user_id=6)
    logic.record(
        db, outlets(tasks), other, messages.welcome(other, USER.model_copy(update={"id": 6}))
    )

    listed = logic.list_for_user(db, ListRequest(user_id=5, limit=2)).items
    assert [n.event_id for n in listed] == events[::-1][:2]
    assert all(n.user_id == 5 for n in listed)
    assert listed[0].created_at.tzinfo == UTC
    assert listed[0].model_dump(mode="json")["created_at"].endswith("Z")


def test_the_email_is_written_once(db: Database, settings: Settings) -> None:
    event = UserRegistered(user_id=5)
    logic.record(db, outlets(RecordingTasks()), event, messages.welcome(event, USER))
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


@pytest.fixture
def shop() -> tuple[FakeCatalog, FakeUsers]:
    """Lamp (product 1, now 15.00 EUR) on the wishlists of users 1 and 2."""
    catalog, users = FakeCatalog(), FakeUsers()
    lamp = catalog.add("Lamp", price_cents=1500, currency="EUR")
    for email in ("u1@example.com", "u2@example.com"):
        catalog.wishlist_add(users.add(email).id, lamp.id)
    return catalog, users


def price_change(old: int, new: int) -> ProductUpdated:
    return ProductUpdated(
        product_id=1, change="updated", changes={"price_cents": FieldChange(old=old, new=new)}
    )


def test_a_price_drop_notifies_each_wishlister_once(
    db: Database, shop: tuple[FakeCatalog, FakeUsers]
) -> None:
    tasks, (catalog, users) = RecordingTasks(), shop
    event = price_change(2000, 1500)
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 2
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 0  # redelivery
    docs = list(db[logic.COLLECTION].find({"event_id": str(event.event_id)}))
    assert sorted(d["userId"] for d in docs) == [1, 2]
    assert all(d["reason"] == "price_drop" and "15.00 EUR" in d["title"] for d in docs)
    assert len(tasks.sent) == 2


def test_a_price_rise_or_a_deleted_product_notifies_nobody(
    db: Database, shop: tuple[FakeCatalog, FakeUsers]
) -> None:
    tasks, (catalog, users) = RecordingTasks(), shop
    assert (
        messages.notify_wishlisters(db, outlets(tasks), catalog, users, price_change(1000, 1500))
        == 0
    )
    catalog.delete_product(1)  # its wishlisters are still known, but there is nothing to buy
    assert catalog.wishlisted_by(1) == [1, 2]
    assert (
        messages.notify_wishlisters(db, outlets(tasks), catalog, users, price_change(2000, 1)) == 0
    )
    assert tasks.sent == []


def test_order_notifications_are_listed_by_order(db: Database) -> None:
    tasks = RecordingTasks()
    created = OrderCreated(order_id=31, user_id=5, product_id=9, quantity=2)
    paid = OrderStatusChanged(
        order_id=31, user_id=5, order_ref="ref-31", old_status="pending", new_status="paid"
    )
    logic.record(db, outlets(tasks), created, messages.order_placed(created, USER))
    time.sleep(0.01)
    logic.record(db, outlets(tasks), paid, messages.order_status(paid, USER))
    listed = logic.for_order(db, OrderNotificationsRequest(order_id=31))
    assert [n.type for n in listed] == ["order.status_changed", "order.created"]
    assert {n.order_id for n in listed} == {31}
    assert logic.for_order(db, OrderNotificationsRequest(order_id=32)) == []


def test_two_concurrent_deliveries_send_the_email_once(db: Database, settings: Settings) -> None:
    """A task queued twice (an event handled twice at once) and run on two threads at once."""
    event = UserRegistered(user_id=5)
    logic.record(db, outlets(RecordingTasks()), event, messages.welcome(event, USER))
    key = logic.notification_key(event, 5)
    sent: list[EmailMessage] = []
    gate = threading.Barrier(2)

    def slow_write(folder: Path, name: str, message: EmailMessage) -> Path:
        sent.append(message)
        time.sleep(0.3)  # the other delivery runs while this one is "sending"
        return folder / name

    outcomes: list[object] = []

    def deliver() -> None:
        gate.wait()
        try:
            outcomes.append(actors.deliver_email(db, settings, key))
        except actors.EmailBusy as busy:
            outcomes.append(busy)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(actors, "write_eml", slow_write)
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(sent) == 1
    assert sorted(type(o).__name__ for o in outcomes) == ["EmailBusy", "bool"]
    # The retried loser finds it sent.
    assert actors.deliver_email(db, settings, key) is False


def test_a_lapsed_lease_is_taken_over(db: Database, settings: Settings) -> None:
    """A worker that died mid-send leaves a lease; once it lapses the e-mail goes out."""
    event = UserRegistered(user_id=5)
    logic.record(db, outlets(RecordingTasks()), event, messages.welcome(event, USER))
    key = logic.notification_key(event, 5)
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    db[logic.COLLECTION].update_one({"key": key}, {"$set": {"emailLease": lapsed}})
    assert actors.deliver_email(db, settings, key) is True


class CountingCommands(monitoring.CommandListener):
    """The MongoDB commands a client sent, by name (pymongo's command monitoring)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class KeptStreams:
    def __init__(self) -> None:
        self.appended: list[NotificationOut] = []

    def append(self, notification: NotificationOut) -> str:
        self.appended.append(notification)
        return "0-1"


def test_a_first_delivery_costs_an_insert_and_one_update(settings: Settings) -> None:
    commands = CountingCommands()
    client = MongoClient(
        settings.mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True, event_listeners=[commands]
    )
    db = client[settings.mongo_db]
    logic.prepare(db)
    streams, tasks = KeptStreams(), RecordingTasks()
    event = OrderCreated(order_id=77, user_id=5, product_id=1, quantity=1)
    commands.names.clear()
    logic.record(db, logic.Outlets(tasks, streams), event, messages.order_placed(event, USER))
    assert commands.names == ["insert", "update"]
    assert len(tasks.sent) == 1
    [streamed] = streams.appended  # the streamed copy is what the API reads back
    [listed] = logic.list_for_user(db, ListRequest(user_id=5, limit=50)).items[:1]
    assert streamed == listed.model_copy(update={"email_status": streamed.email_status})
    again = logic.record(
        db, logic.Outlets(tasks, streams), event, messages.order_placed(event, USER)
    )
    assert again["streamed"] and again["emailQueued"]
    assert len(streams.appended) == 1 and len(tasks.sent) == 1
