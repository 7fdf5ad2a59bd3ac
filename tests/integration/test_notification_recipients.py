"""The notifications service's read model of recipients spares the users service a call per
event (embedded MongoDB; the service class wired by hand, its handlers called with wire bodies).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from contracts.catalog import CatalogApi, FieldChange, ProductUpdated
from contracts.courses import CoursesApi
from contracts.errors import NotFound
from contracts.notifications import NotificationOut
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserIds, UserOut, UserRegistered, UsersApi
from mesh.clients import make_mongo
from mesh.settings import Settings
from mesh.typed import client
from services.notifications import logic, messages, recipients
from services.notifications.service import NotificationsService
from tests.unit.fakes import RecordingTasks
from tests.unit.service_fakes import (
    FakeCatalog,
    FakeContent,
    FakeCourses,
    FakeUsers,
    LocalTransport,
    providers,
    wired,
)


class CountingUsers(FakeUsers):
    """FakeUsers that records each lookup: ``("get_user", id)`` or ``("get_users", ids)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def get_user(self, user_id: int) -> UserOut:
        self.calls.append(("get_user", user_id))
        return super().get_user(user_id)

    def get_users(self, user_ids: UserIds) -> list[UserOut]:
        self.calls.append(("get_users", list(user_ids)))
        return super().get_users(user_ids)


class ListStreams:
    """The users' live streams, as a list."""

    def __init__(self) -> None:
        self.appended: list[NotificationOut] = []

    def append(self, notification: NotificationOut) -> str:
        self.appended.append(notification)
        return f"{len(self.appended)}-0"


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


@pytest.fixture
def users() -> CountingUsers:
    users = CountingUsers()
    for n in range(1, 6):
        users.add(f"user{n}@example.com", name=f"User {n}")
    return users


@pytest.fixture
def service(db: Database, users: CountingUsers) -> NotificationsService:
    """The real service class; providers the handlers do not use (metrics...) left out."""
    given: dict[str, Any] = dict.fromkeys(providers(NotificationsService))
    given.update(
        mongo=db,
        tasks=RecordingTasks(),
        streams=ListStreams(),
        users=client(UsersApi, "users", LocalTransport(users=users)),
        catalog=client(CatalogApi, "catalog", LocalTransport(catalog=FakeCatalog())),
        courses=client(CoursesApi, "courses", LocalTransport(courses=FakeCourses(FakeContent()))),
    )
    return wired(NotificationsService, **given)


def placed(order_id: int, user_id: int) -> OrderCreated:
    return OrderCreated(order_id=order_id, user_id=user_id, product_id=9, quantity=1)


def paid(order_id: int, user_id: int) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=order_id,
        user_id=user_id,
        order_ref=f"ref-{order_id}",
        old_status="pending",
        new_status="paid",
    )


def emails_to(db: Database, event: Any) -> list[str]:
    docs = db[logic.COLLECTION].find({"event_id": str(event.event_id)})
    return sorted(doc["email"]["to"] for doc in docs)


def test_after_registration_an_orders_events_cost_no_call_to_users(
    service: NotificationsService, users: CountingUsers, db: Database
) -> None:
    service.on_user_registered(UserRegistered(user_id=2).to_wire())
    assert users.calls == [("get_user", 2)]  # the one lookup, kept
    users.calls.clear()
    created, status = placed(31, 2), paid(31, 2)
    service.on_order_created(created.to_wire())
    service.on_order_status_changed(status.to_wire())
    service.on_user_registered(UserRegistered(user_id=2).to_wire())  # another delivery
    assert users.calls == []
    assert emails_to(db, created) == emails_to(db, status) == ["user2@example.com"]
    doc = db[logic.COLLECTION].find_one({"event_id": str(created.event_id)})
    assert doc is not None and doc["email"]["text"].startswith("Hello User 2,")


def test_a_miss_asks_users_once_then_hits(
    service: NotificationsService, users: CountingUsers, db: Database
) -> None:
    """An order event before (or without) the user's registration event."""
    first, second = placed(40, 3), paid(40, 3)
    service.on_order_created(first.to_wire())
    assert users.calls == [("get_user", 3)]
    service.on_order_status_changed(second.to_wire())
    service.on_order_created(placed(41, 3).to_wire())
    assert users.calls == [("get_user", 3)]
    assert emails_to(db, first) == emails_to(db, second) == ["user3@example.com"]


def test_an_unknown_user_is_not_found_and_not_stored(
    service: NotificationsService, users: CountingUsers, db: Database
) -> None:
    for _ in range(2):
        with pytest.raises(NotFound):
            service.on_order_created(placed(50, 99).to_wire())
    assert users.calls == [("get_user", 99)] * 2  # a miss is never remembered as "nobody"
    assert db[recipients.COLLECTION].count_documents({}) == 0


def test_a_batch_asks_users_for_its_misses_only(db: Database, users: CountingUsers) -> None:
    for user_id in (1, 3):
        recipients.remember(db, users.users[user_id])
    found = recipients.recipients(db, users, [5, 1, 2, 99, 3, 4, 2])
    assert users.calls == [("get_users", [5, 2, 99, 4])]
    assert [r.id for r in found] == [5, 1, 2, 3, 4]  # as asked, once each, unknown left out
    assert [r.email for r in found] == [users.users[r.id].email for r in found]
    recipients.remember(db, users.users[1])  # again: still one document per user
    assert db[recipients.COLLECTION].count_documents({}) == 5
    users.calls.clear()
    assert [r.id for r in recipients.recipients(db, users, [1, 2, 3, 4, 5])] == [1, 2, 3, 4, 5]
    assert users.calls == []


def test_the_wishlist_fan_out_looks_up_the_misses_only(db: Database, users: CountingUsers) -> None:
    catalog = FakeCatalog()
    lamp = catalog.add("Lamp", price_cents=1500)
    for user_id in range(1, 6):
        catalog.wishlist_add(user_id, lamp.id)
    for user_id in (2, 4):
        recipients.remember(db, users.users[user_id])
    outlets = logic.Outlets(RecordingTasks(), ListStreams())

    def drop(old: int) -> ProductUpdated:
        changes = {"price_cents": FieldChange(old=old, new=1500)}
        return ProductUpdated(product_id=lamp.id, change="updated", changes=changes)

    first = drop(2000)
    assert messages.notify_wishlisters(db, outlets, catalog, users, first) == 5
    assert users.calls == [("get_users", [1, 3, 5])]
    assert emails_to(db, first) == [f"user{n}@example.com" for n in range(1, 6)]
    users.calls.clear()
    assert messages.notify_wishlisters(db, outlets, catalog, users, drop(1800)) == 5
    assert users.calls == []
