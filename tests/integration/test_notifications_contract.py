"""The notifications service's promises, checked on FakeNotifications and on the real service.

The real one runs in this process on the embedded MongoDB server (no broker): its nameko
service class with dependencies given by hand, its events handled by calling the handlers with
wire bodies, its RPC called through JSON (``LocalTransport``) as ``NotificationsApi``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from contracts.catalog import CatalogApi
from contracts.courses import CoursesApi
from contracts.errors import InvalidInput, NotFound
from contracts.notifications import (
    ListRequest,
    NotificationOut,
    NotificationsApi,
    OrderNotificationsRequest,
)
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered, UsersApi
from mesh.clients import make_mongo, make_redis
from mesh.settings import Settings
from mesh.typed import client
from services.notifications import logic
from services.notifications.service import NotificationsService
from services.notifications.streams import UserStreams
from tests.unit.fakes import RecordingTasks
from tests.unit.service_fakes import (
    FakeCatalog,
    FakeContent,
    FakeCourses,
    FakeNotifications,
    FakeUsers,
    LocalTransport,
    wired,
)

Notifying = UserRegistered | OrderCreated | OrderStatusChanged
HANDLERS = {
    UserRegistered: "on_user_registered",
    OrderCreated: "on_order_created",
    OrderStatusChanged: "on_order_status_changed",
}


@dataclass(frozen=True)
class Side:
    api: NotificationsApi
    transport: LocalTransport
    notify: Callable[[Notifying], None]
    """Store the notification an event makes (the real service: by handling the event)."""

    def raw(self, method: str, *args: Any) -> Any:
        return self.transport.call("notifications", method, *args)


def fake_side() -> Side:
    fake = FakeNotifications()

    def notify(event: Notifying) -> None:
        order_id = getattr(event, "order_id", None)
        fake.add(event.user_id, order_id=order_id, kind=event.type, event_id=str(event.event_id))

    return Side(fake, LocalTransport(notifications=fake), notify)


def real_side(settings: Settings) -> Side:
    db = make_mongo(settings)[settings.mongo_db]
    logic.prepare(db)
    users = FakeUsers()
    for n in range(1, 4):
        users.add(f"user{n}@example.com", name=f"User {n}")
    service = wired(
        NotificationsService,
        context=None,
        mongo=db,
        tasks=RecordingTasks(),
        streams=UserStreams(make_redis(settings)),
        users=client(UsersApi, "users", LocalTransport(users=users)),
        catalog=client(CatalogApi, "catalog", LocalTransport(catalog=FakeCatalog())),
        courses=client(CoursesApi, "courses", LocalTransport(courses=FakeCourses(FakeContent()))),
    )

    def notify(event: Notifying) -> None:
        getattr(service, HANDLERS[type(event)])(event.to_wire())

    transport = LocalTransport(notifications=service)
    return Side(client(NotificationsApi, "notifications", transport), transport, notify)


@pytest.fixture(params=["fake", "real"])
def notifications(request: pytest.FixtureRequest) -> Side:
    if request.param == "fake":
        return fake_side()
    return real_side(request.getfixturevalue("settings"))


def placed(order_id: int, user_id: int = 1) -> OrderCreated:
    return OrderCreated(order_id=order_id, user_id=user_id, product_id=9, quantity=1)


def paid(order_id: int, user_id: int = 1) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=order_id,
        user_id=user_id,
        order_ref=f"ref-{order_id}",
        old_status="pending",
        new_status="paid",
    )


def notify_in_order(notifications: Side, events: list[Notifying]) -> None:
    for event in events:
        notifications.notify(event)
        time.sleep(0.002)  # distinct times: "newest first" is then one answer


def test_a_users_list_is_theirs_newest_first_and_limited(notifications: Side) -> None:
    mine: list[Notifying] = [UserRegistered(user_id=1), placed(31), paid(31)]
    notify_in_order(notifications, [*mine, UserRegistered(user_id=2)])
    page = notifications.api.list_for_user(ListRequest(user_id=1))
    listed = page.items
    assert [n.event_id for n in listed] == [str(e.event_id) for e in reversed(mine)]
    assert [(n.type, n.user_id, n.order_id) for n in listed] == [
        ("order.status_changed", 1, 31),
        ("order.created", 1, 31),
        ("user.registered", 1, None),
    ]
    assert page.next_before is None
    assert len(notifications.api.list_for_user(ListRequest(user_id=1, limit=2)).items) == 2
    empty = notifications.api.list_for_user(ListRequest(user_id=3))
    assert (empty.items, empty.next_before) == ([], None)


def walk(notifications: Side, user_id: int, limit: int) -> list[list[NotificationOut]]:
    """Every page of a user's notifications, following ``next_before`` to the end."""
    pages, before = [], None
    while True:
        page = notifications.api.list_for_user(
            ListRequest(user_id=user_id, limit=limit, before=before)
        )
        pages.append(page.items)
        if page.next_before is None:
            return pages
        assert page.next_before == page.items[-1].id
        before = page.next_before


def test_pages_reach_every_notification_once_newest_first(notifications: Side) -> None:
    mine: list[Notifying] = [placed(n) for n in range(1, 8)]
    notify_in_order(notifications, [*mine, UserRegistered(user_id=2)])
    pages = walk(notifications, 1, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [n.event_id for p in pages for n in p]
    assert ids == [str(e.event_id) for e in reversed(mine)]
    assert [len(p) for p in walk(notifications, 1, 7)] == [7]  # a full last page: no next


def test_a_notification_is_shown_with_its_email_queued(notifications: Side) -> None:
    notifications.notify(UserRegistered(user_id=1))
    [shown] = notifications.api.list_for_user(ListRequest(user_id=1)).items
    assert (shown.email_status, shown.sent_at) == ("queued", None)


def test_before_must_be_one_of_the_users_own_notifications(notifications: Side) -> None:
    notify_in_order(notifications, [placed(31), placed(32, user_id=2)])
    others = notifications.api.list_for_user(ListRequest(user_id=2)).items[0].id
    for before in (others, "0" * 24):
        with pytest.raises(NotFound):
            notifications.api.list_for_user(ListRequest(user_id=1, before=before))


def test_an_orders_notifications_are_its_own_newest_first(notifications: Side) -> None:
    notify_in_order(notifications, [placed(31), placed(32, user_id=2), paid(31)])
    listed = notifications.api.get_notifications(OrderNotificationsRequest(order_id=31))
    assert [(n.type, n.order_id) for n in listed] == [
        ("order.status_changed", 31),
        ("order.created", 31),
    ]
    one = notifications.api.get_notifications(OrderNotificationsRequest(order_id=31, limit=1))
    assert one == listed[:1]
    assert notifications.api.get_notifications(OrderNotificationsRequest(order_id=33)) == []


@pytest.mark.parametrize(
    ("method", "request_body", "fields"),
    [
        ("list_for_user", {"user_id": 0, "limit": 5}, ["request.user_id"]),
        ("list_for_user", {"user_id": 5, "limit": 0}, ["request.limit"]),
        ("list_for_user", {"user_id": 5, "limit": 51}, ["request.limit"]),
        ("list_for_user", {"user_id": "5", "limit": 5}, ["request.user_id"]),
        ("list_for_user", {"user_id": 5, "limit": "x"}, ["request.limit"]),
        ("list_for_user", {"limit": 5}, ["request.user_id"]),
        ("list_for_user", {"user_id": 5, "before": "not-an-id"}, ["request.before"]),
        ("list_for_user", {"user_id": 5, "before": "A" * 24}, ["request.before"]),
        ("list_for_user", 5, ["request"]),
        ("get_notifications", {"order_id": 0}, ["request.order_id"]),
        ("get_notifications", {"order_id": 1, "limit": 101}, ["request.limit"]),
        ("get_notifications", {"order_id": 1, "user_id": 1}, ["request.user_id"]),
    ],
)
def test_notifications_refuse_a_request_that_breaks_the_contract(
    notifications: Side, method: str, request_body: Any, fields: list[str]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        notifications.raw(method, request_body)
    assert [d["field"] for d in caught.value.details] == fields
