"""One set of promises, checked on each fake (tests/unit/service_fakes.py) and on the real service.

The real service runs in this process: its nameko service class with every dependency given by
hand (SQLite, a RecordingSink for the outbox), called through JSON by ``LocalTransport`` and
used as its Protocol through ``mesh.typed.client``, as the gateway uses it. ``raw`` sends wire
arguments as they are, for payloads that break the contract and cannot even be built as models.
The real orders service takes its stock from a FakeCatalog and checks users in a FakeUsers,
both called through the same transport. The real courses service gets its publishing jobs run
by the pipeline's own bookkeeping (``services.courses.jobs``), the fake by ``run_job``.
The real analytics service counts the events it is given through its own handlers (wire bodies,
as off the bus); the fake takes the same bodies through its handlers of the same names.
Notifications: tests/integration/ (MongoDB); content: tests/integration/ (Qdrant and the model);
the assistant: tests/integration/test_assistant_contract.py (MongoDB, Redis), whose checks run
here on the fake alone.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar, get_type_hints

import pytest
from sqlalchemy import MetaData
from sqlalchemy.orm import sessionmaker

from contracts.analytics import (
    MAX_DAYS,
    AnalyticsApi,
    EnrollmentsQuery,
    OrdersReportQuery,
    ReportQuery,
)
from contracts.assistant import AssistantApi
from contracts.base import Event, Viewer
from contracts.catalog import (
    CatalogApi,
    ProductCreate,
    ProductOut,
    ProductPatch,
    ProductQuery,
    ProductUpdated,
    Reservation,
    ReserveRequest,
    WishlistQuery,
)
from contracts.content import ContentApi
from contracts.courses import (
    CourseCreate,
    CourseOut,
    CoursePatch,
    CoursePublished,
    CourseQuery,
    CoursesApi,
    EnrollmentCreated,
    LessonCreate,
    ProgressUpdated,
    RecentJobsQuery,
    StoredFile,
)
from contracts.errors import (
    AuthenticationFailed,
    Conflict,
    ContractViolation,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from contracts.notifications import ListRequest, NotificationPage, NotificationsApi
from contracts.orders import (
    TRANSITIONS,
    OrderCreate,
    OrderCreated,
    OrderOut,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    OrdersApi,
    OrderStatusChanged,
    StatusChange,
)
from contracts.users import Credentials, RegisterRequest, UserOut, UserRegistered, UsersApi
from mesh.sql import make_sessionmaker
from mesh.typed import Transport, client
from services.analytics import models as analytics_models
from services.analytics.service import AnalyticsService
from services.assistant.service import AssistantService
from services.catalog import models as catalog_models
from services.catalog.service import CatalogService
from services.content.service import ContentService
from services.courses import jobs as course_jobs
from services.courses import models as courses_models
from services.courses.service import CoursesService
from services.notifications.service import NotificationsService
from services.orders import models as orders_models
from services.orders.service import OrdersService
from services.users import models as users_models
from services.users.passwords import PasswordHasher
from services.users.service import UsersService
from tests.integration import test_assistant_contract as assistant_contract
from tests.unit.fakes import FakeCache, RecordingSink, RecordingTasks
from tests.unit.service_fakes import (
    PASSWORD,
    FakeAnalytics,
    FakeAssistant,
    FakeCatalog,
    FakeContent,
    FakeCourses,
    FakeNotifications,
    FakeOrders,
    FakeUsers,
    LocalTransport,
    wired,
)
from tests.unit.test_analytics_figures import check_reports, deliveries, world

P = TypeVar("P")
SIDES = ["fake", "real"]


@dataclass(frozen=True)
class Side(Generic[P]):
    """One implementation of a service: ``api`` is its Protocol, ``raw`` calls it with wire data."""

    kind: str
    name: str
    api: P
    transport: Transport
    events: list[Event]

    def raw(self, method: str, *args: Any) -> Any:
        return self.transport.call(self.name, method, *args)


def fake_side(name: str, fake: Any) -> Side[Any]:
    return Side("fake", name, fake, LocalTransport(**{name: fake}), fake.events)


def real_side(name: str, protocol: type[P], service: object, sink: RecordingSink) -> Side[P]:
    transport = LocalTransport(**{name: service})
    return Side("real", name, client(protocol, name, transport), transport, sink.events)


def sqlite(tmp_path: Path, metadata: MetaData) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'service.db'}", metadata)


def invalid_fields(call: Callable[[], Any]) -> list[str]:
    """The fields an InvalidInput names (none for a call with the wrong arguments)."""
    with pytest.raises(InvalidInput) as caught:
        call()
    return [detail["field"] for detail in caught.value.details or []]


# ================================================================= users

ANN = "ann@example.com"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture(params=SIDES)
def users(request: pytest.FixtureRequest, tmp_path: Path, hasher: PasswordHasher) -> Side[UsersApi]:
    if request.param == "fake":
        return fake_side("users", FakeUsers())
    sink = RecordingSink()
    service = wired(
        UsersService,
        context=None,
        db=sqlite(tmp_path, users_models.Base.metadata),
        events=sink,
        cache=FakeCache(),
        hasher=hasher,
    )
    return real_side("users", UsersApi, service, sink)


def register_ann(users: Side[UsersApi], email: str = ANN) -> UserOut:
    return users.api.register(RegisterRequest(email=email, password=PASSWORD, name=" Ann  Lee "))


def test_register_returns_the_user_and_announces_it(users: Side[UsersApi]) -> None:
    user = register_ann(users, "Ann@Example.com")
    assert (user.email, user.name, user.is_admin) == (ANN, "Ann Lee", False)
    assert "password" not in user.model_dump()
    assert users.api.get_user(user.id) == user
    assert [(type(e), e.user_id) for e in users.events if isinstance(e, UserRegistered)] == [
        (UserRegistered, user.id)
    ]
    assert len(users.events) == 1


def test_register_keeps_the_role(users: Side[UsersApi]) -> None:
    request_body = RegisterRequest(email=ANN, password=PASSWORD, name="Ann", role="instructor")
    user = users.api.register(request_body)
    assert user.role == "instructor" and users.api.get_user(user.id).role == "instructor"


def test_a_taken_email_is_a_conflict_in_any_case(users: Side[UsersApi]) -> None:
    register_ann(users)
    with pytest.raises(Conflict, match="already registered"):
        register_ann(users, "ANN@example.com")
    assert len(users.events) == 1


def test_authenticate_takes_any_email_case_and_fails_one_way(users: Side[UsersApi]) -> None:
    user = register_ann(users)
    assert users.api.authenticate(Credentials(email="ANN@EXAMPLE.COM", password=PASSWORD)) == user
    for email, password in ((ANN, "wrong-password-1"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(AuthenticationFailed) as caught:
            users.api.authenticate(Credentials(email=email, password=password))
        assert str(caught.value) == "invalid e-mail or password"


def test_an_unknown_user_is_not_found(users: Side[UsersApi]) -> None:
    with pytest.raises(NotFound, match="user not found"):
        users.api.get_user(999)
    with pytest.raises(NotFound, match="user not found"):
        users.api.promote_admin("ghost@example.com")


def test_get_users_answers_those_that_exist_in_the_order_asked(users: Side[UsersApi]) -> None:
    ann = register_ann(users)
    bob = users.api.register(
        RegisterRequest(email="bob@example.com", password=PASSWORD, name="Bob")
    )
    assert users.api.get_users([bob.id, 999, ann.id, bob.id]) == [bob, ann]
    assert users.api.get_users([]) == []


def test_promote_admin_makes_an_administrator(users: Side[UsersApi]) -> None:
    user = register_ann(users)
    assert users.api.promote_admin(" ANN@example.com ").is_admin is True
    assert users.api.get_user(user.id).is_admin is True


GOOD_USER = {"email": ANN, "password": PASSWORD, "name": "Ann"}
USERS_BROKEN = [
    ("register", [{**GOOD_USER, "email": "nope"}], ["request.email"]),
    ("register", [{**GOOD_USER, "password": "short"}], ["request.password"]),
    ("register", [{**GOOD_USER, "name": "bad\x00name"}], ["request.name"]),
    ("register", [{**GOOD_USER, "is_admin": True}], ["request.is_admin"]),
    ("register", ["not a dict"], ["request"]),
    ("authenticate", [{"email": ANN}], ["credentials.password"]),
    ("authenticate", ["not a dict"], ["credentials"]),
    ("get_user", [0], ["user_id"]),
    ("get_user", ["1"], ["user_id"]),
    ("get_user", [True], ["user_id"]),
    ("get_user", [None], ["user_id"]),
    ("get_user", [], []),
    ("get_users", ["1"], ["user_ids"]),
    ("get_users", [[1, "2"]], ["user_ids.1"]),
    ("get_users", [list(range(1, 1002))], ["user_ids"]),
    ("promote_admin", [""], ["email"]),
]


@pytest.mark.parametrize(("method", "args", "fields"), USERS_BROKEN)
def test_users_refuse_a_payload_that_breaks_the_contract(
    users: Side[UsersApi], method: str, args: list[Any], fields: list[str]
) -> None:
    assert invalid_fields(lambda: users.raw(method, *args)) == fields
    assert users.events == []  # nothing stored


# ================================================================= catalog


@pytest.fixture(params=SIDES)
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Side[CatalogApi]:
    if request.param == "fake":
        return fake_side("catalog", FakeCatalog())
    sink = RecordingSink()
    service = wired(
        CatalogService,
        context=None,
        db=sqlite(tmp_path, catalog_models.Base.metadata),
        events=sink,
        orders=FakeOrders(FakeCatalog()),  # only the reservation settling asks
    )
    return real_side("catalog", CatalogApi, service, sink)


def create(catalog: Side[CatalogApi], name: str = "Desk lamp", **fields: Any) -> ProductOut:
    values = {"description": "Warm light", "price_cents": 2500, "stock": 3, **fields}
    return catalog.api.create_product(ProductCreate(name=name, **values))


def kinds(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.change, e.product_id) for e in events if isinstance(e, ProductUpdated)]


def stock_changes(events: list[Event]) -> list[dict[str, Any]]:
    return [e.changes["stock"].model_dump() for e in events if isinstance(e, ProductUpdated)]


def test_create_fills_the_defaults_and_announces_every_field(catalog: Side[CatalogApi]) -> None:
    product = create(catalog)
    assert (product.currency, product.stock, product.created_at) == ("EUR", 3, product.updated_at)
    assert catalog.api.get_product(product.id) == product
    [event] = catalog.events
    assert isinstance(event, ProductUpdated) and kinds([event]) == [("created", product.id)]
    assert {f: c.model_dump() for f, c in event.changes.items()} == {
        "name": {"old": None, "new": "Desk lamp"},
        "description": {"old": None, "new": "Warm light"},
        "price_cents": {"old": None, "new": 2500},
        "currency": {"old": None, "new": "EUR"},
        "stock": {"old": None, "new": 3},
    }


def test_an_unknown_product_is_not_found(catalog: Side[CatalogApi]) -> None:
    for call in (
        lambda: catalog.api.get_product(999),
        lambda: catalog.api.update_product(999, ProductPatch(stock=1)),
        lambda: catalog.api.delete_product(999),
        lambda: catalog.api.wishlist_add(7, 999),
        lambda: catalog.api.reserve_stock(
            ReserveRequest(product_id=999, quantity=1, order_ref="r")
        ),
    ):
        with pytest.raises(NotFound, match="product not found"):
            call()
    assert catalog.api.wishlisted_by(999) == []
    assert catalog.api.release_stock("never-reserved") is False
    assert catalog.events == []


def test_update_applies_the_patch_and_announces_only_real_changes(
    catalog: Side[CatalogApi],
) -> None:
    product = create(catalog)
    patch = ProductPatch(name="Desk lamp", price_cents=1999, description="Cold light")
    updated = catalog.api.update_product(product.id, patch)
    assert (updated.name, updated.price_cents, updated.description) == (
        "Desk lamp",
        1999,
        "Cold light",
    )
    assert (
        updated.updated_at >= product.updated_at and catalog.api.get_product(product.id) == updated
    )
    event = catalog.events[-1]
    assert isinstance(event, ProductUpdated)
    assert {f: c.model_dump() for f, c in event.changes.items()} == {
        "price_cents": {"old": 2500, "new": 1999},
        "description": {"old": "Warm light", "new": "Cold light"},
    }
    assert catalog.api.update_product(product.id, ProductPatch(stock=3)) == updated
    assert len(catalog.events) == 2  # a patch that changes nothing announces nothing


def test_delete_is_soft_and_happens_once(catalog: Side[CatalogApi]) -> None:
    product = create(catalog)
    catalog.api.wishlist_add(7, product.id)
    catalog.api.delete_product(product.id)
    for call in (
        lambda: catalog.api.get_product(product.id),
        lambda: catalog.api.update_product(product.id, ProductPatch(stock=1)),
        lambda: catalog.api.delete_product(product.id),
        lambda: catalog.api.wishlist_add(8, product.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert catalog.api.list_products(ProductQuery()).total == 0
    assert catalog.api.wishlist_list(7, WishlistQuery()).items == []
    assert catalog.api.wishlisted_by(product.id) == [7]  # its wishlisters are still known
    assert kinds(catalog.events) == [("created", product.id), ("deleted", product.id)]


def test_list_pages_in_id_order_and_counts_every_match(catalog: Side[CatalogApi]) -> None:
    ids = [create(catalog, f"Lamp {n}").id for n in range(5)]
    page = catalog.api.list_products(ProductQuery(limit=2, offset=1))
    assert [p.id for p in page.items] == ids[1:3]
    assert (page.total, page.limit, page.offset) == (5, 2, 1)
    assert catalog.api.list_products(ProductQuery()).limit == 20


def test_q_matches_name_or_description_in_any_case_and_literally(
    catalog: Side[CatalogApi],
) -> None:
    for name, description in (
        ("Desk LAMP", ""),
        ("Chair", "goes with a lamp"),
        ("100% cotton", ""),
        ("1000 cotton", ""),
    ):
        create(catalog, name, description=description)
    found = catalog.api.list_products(ProductQuery(q="  lamp "))
    assert ([p.name for p in found.items], found.total) == (["Desk LAMP", "Chair"], 2)
    assert [p.name for p in catalog.api.list_products(ProductQuery(q="0%")).items] == [
        "100% cotton"
    ]


def test_the_wishlist_is_newest_first_and_adding_again_changes_nothing(
    catalog: Side[CatalogApi],
) -> None:
    lamp, chair, desk = (create(catalog, name) for name in ("Lamp", "Chair", "Desk"))
    first = catalog.api.wishlist_add(7, lamp.id)
    for product in (chair, desk):
        catalog.api.wishlist_add(7, product.id)
    assert catalog.api.wishlist_add(7, lamp.id) == first
    catalog.api.wishlist_add(8, chair.id)
    page = catalog.api.wishlist_list(7, WishlistQuery())
    assert [i.product.name for i in page.items] == ["Desk", "Chair", "Lamp"]
    assert (page.limit, page.offset, page.next_offset) == (50, 0, None)
    assert catalog.api.wishlist_list(9, WishlistQuery()).items == []


def test_the_wishlist_comes_in_pages_that_say_where_the_next_starts(
    catalog: Side[CatalogApi],
) -> None:
    for name in ("A", "B", "C", "D", "E"):
        catalog.api.wishlist_add(7, create(catalog, name).id)
    seen, query = [], WishlistQuery(limit=2)
    while True:
        page = catalog.api.wishlist_list(7, query)
        seen.append([i.product.name for i in page.items])
        if page.next_offset is None:
            break
        query = WishlistQuery(limit=2, offset=page.next_offset)
    assert seen == [["E", "D"], ["C", "B"], ["A"]]
    exact = catalog.api.wishlist_list(7, WishlistQuery(limit=5))
    assert (len(exact.items), exact.next_offset) == (5, None)
    assert catalog.api.wishlist_list(7, WishlistQuery(offset=9)).items == []


def test_wishlist_remove_is_idempotent_and_wishlisted_by_is_ordered(
    catalog: Side[CatalogApi],
) -> None:
    lamp = create(catalog)
    for user_id in (9, 3, 5):
        catalog.api.wishlist_add(user_id, lamp.id)
    assert catalog.api.wishlisted_by(lamp.id) == [3, 5, 9]
    assert catalog.api.wishlisted_by(lamp.id, 3, 1) == [5]  # after user 3, one of them
    assert catalog.api.wishlisted_by(lamp.id, 9) == []
    for _ in range(2):
        catalog.api.wishlist_remove(3, lamp.id)
    catalog.api.wishlist_remove(3, 999)
    assert catalog.api.wishlisted_by(lamp.id) == [5, 9]


def reserve(product: ProductOut, quantity: int = 1, ref: str = "order-0001") -> ReserveRequest:
    return ReserveRequest(product_id=product.id, quantity=quantity, order_ref=ref)


def test_reserve_takes_stock_and_prices_the_reservation(catalog: Side[CatalogApi]) -> None:
    lamp = create(catalog, currency="GBP")
    reservation = catalog.api.reserve_stock(reserve(lamp, 2))
    assert reservation == Reservation(
        order_ref="order-0001",
        product_id=lamp.id,
        quantity=2,
        unit_price_cents=2500,
        currency="GBP",
    )
    assert catalog.api.get_product(lamp.id).stock == 1
    assert stock_changes(catalog.events[1:]) == [{"old": 3, "new": 1}]


def test_not_enough_stock_is_a_conflict_and_takes_nothing(catalog: Side[CatalogApi]) -> None:
    lamp = create(catalog)
    with pytest.raises(Conflict, match="not enough stock"):
        catalog.api.reserve_stock(reserve(lamp, 4))
    catalog.api.reserve_stock(reserve(lamp, 3))
    with pytest.raises(Conflict, match="not enough stock"):
        catalog.api.reserve_stock(reserve(lamp, 1, "order-0002"))
    assert catalog.api.get_product(lamp.id).stock == 0
    assert stock_changes(catalog.events[1:]) == [{"old": 3, "new": 0}]


def test_reserve_is_idempotent_by_order_ref(catalog: Side[CatalogApi]) -> None:
    lamp = create(catalog)
    first = catalog.api.reserve_stock(reserve(lamp, 2))
    assert catalog.api.reserve_stock(reserve(lamp, 2)) == first
    with pytest.raises(Conflict, match="other stock"):
        catalog.api.reserve_stock(reserve(lamp, 1))
    assert catalog.api.get_product(lamp.id).stock == 1
    assert len(catalog.events) == 2


def test_release_gives_the_stock_back_once(catalog: Side[CatalogApi]) -> None:
    lamp = create(catalog)
    catalog.api.reserve_stock(reserve(lamp, 2))
    assert catalog.api.release_stock("order-0001") is True
    assert catalog.api.release_stock("order-0001") is False
    assert catalog.api.get_product(lamp.id).stock == 3
    with pytest.raises(Conflict, match="released"):
        catalog.api.reserve_stock(reserve(lamp, 2))  # a late retry is not reserved again
    assert stock_changes(catalog.events[1:]) == [{"old": 3, "new": 1}, {"old": 1, "new": 3}]


def test_a_deleted_product_cannot_be_reserved_but_its_reservation_is_released(
    catalog: Side[CatalogApi],
) -> None:
    lamp = create(catalog)
    catalog.api.reserve_stock(reserve(lamp, 1))
    catalog.api.delete_product(lamp.id)
    with pytest.raises(NotFound):
        catalog.api.reserve_stock(reserve(lamp, 1, "order-0002"))
    assert catalog.api.release_stock("order-0001") is True


PRODUCT = {"name": "x", "price_cents": 1}
RESERVE = {"product_id": 1, "quantity": 1, "order_ref": "order-0001"}
CATALOG_BROKEN: list[tuple[str, list[Any], list[str]]] = [
    ("create_product", [{"name": "", "price_cents": 1}], ["product.name"]),
    ("create_product", [{"name": "x", "price_cents": -1}], ["product.price_cents"]),
    ("create_product", [{"name": "x", "price_cents": "100"}], ["product.price_cents"]),
    ("create_product", [{**PRODUCT, "currency": "eur"}], ["product.currency"]),
    ("create_product", [{**PRODUCT, "stock": 1.5}], ["product.stock"]),
    ("create_product", [{**PRODUCT, "colour": "red"}], ["product.colour"]),
    ("create_product", [{**PRODUCT, "description": "esc\x1b[0m"}], ["product.description"]),
    ("create_product", ["not a dict"], ["product"]),
    ("update_product", [1, {}], ["patch"]),
    ("update_product", [1, {"name": None}], ["patch"]),
    ("update_product", [1, {"stock": -1}], ["patch.stock"]),
    ("update_product", [1, {"id": 7}], ["patch.id"]),
    *[("get_product", [bad], ["product_id"]) for bad in (0, -1, "1", True, None, 1.0, 2**64)],
    ("list_products", [{"limit": 0}], ["query.limit"]),
    ("list_products", [{"limit": 101}], ["query.limit"]),
    ("list_products", [{"limit": "10"}], ["query.limit"]),
    ("list_products", [{"offset": -1}], ["query.offset"]),
    ("list_products", [{"offset": 1_000_001}], ["query.offset"]),
    ("list_products", [{"q": "x" * 101}], ["query.q"]),
    ("list_products", [{"q": "a\x00b"}], ["query.q"]),
    ("list_products", [{"sort": "name"}], ["query.sort"]),
    ("list_products", [[]], ["query"]),
    *[
        ("reserve_stock", [{**RESERVE, "quantity": bad}], ["request.quantity"])
        for bad in (0, -1, 101, "2", 1.0)
    ],
    ("reserve_stock", [{**RESERVE, "product_id": "1"}], ["request.product_id"]),
    *[
        ("reserve_stock", [{**RESERVE, "order_ref": bad}], ["request.order_ref"])
        for bad in ("", "x" * 65, "ref\x00nul")
    ],
    ("reserve_stock", [{"product_id": 1, "quantity": 1}], ["request.order_ref"]),
    *[("release_stock", [bad], ["order_ref"]) for bad in (None, 7, "", "x" * 65)],
    *[
        (method, [bad, *rest], ["user_id"])
        for bad in (0, -3, "7", True, None)
        for method, rest in (
            ("wishlist_list", [{}]),
            ("wishlist_add", [1]),
            ("wishlist_remove", [1]),
        )
    ],
    ("wishlist_list", [7, {"limit": 101}], ["query.limit"]),
    ("wishlist_list", [7, {"offset": -1}], ["query.offset"]),
    ("wishlist_list", [7], []),
    ("wishlisted_by", [1, -1], ["after"]),
    ("wishlisted_by", [1, 0, 1001], ["limit"]),
    ("wishlisted_by", [1, 0, 0], ["limit"]),
    *[("wishlist_add", [7, bad], ["product_id"]) for bad in (0, "1", None)],
    ("wishlist_remove", [7, "junk"], ["product_id"]),
    ("wishlisted_by", ["1"], ["product_id"]),
    ("get_product", [], []),
]


@pytest.mark.parametrize(("method", "args", "fields"), CATALOG_BROKEN)
def test_the_catalog_refuses_a_payload_that_breaks_the_contract(
    catalog: Side[CatalogApi], method: str, args: list[Any], fields: list[str]
) -> None:
    lamp = create(catalog)
    assert lamp.id == 1
    assert invalid_fields(lambda: catalog.raw(method, *args)) == fields
    assert catalog.api.get_product(lamp.id) == lamp
    assert len(catalog.events) == 1  # nothing stored


# ================================================================= orders


@dataclass(frozen=True)
class Shop:
    """An orders service, the catalog it takes stock from, and the users it checks."""

    orders: Side[OrdersApi]
    catalog: FakeCatalog
    users: FakeUsers
    ada: UserOut
    bob: UserOut
    lamp: ProductOut

    def buy(
        self, quantity: int = 1, user: UserOut | None = None, key: str | None = None
    ) -> OrderOut:
        order = OrderCreate(product_id=self.lamp.id, quantity=quantity)
        return self.orders.api.create_order((user or self.ada).id, order, key)

    def stock(self) -> int:
        return self.catalog.products[self.lamp.id].stock

    def viewer(self, user: UserOut | None = None, *, admin: bool = False) -> Viewer:
        return Viewer(user_id=(user or self.ada).id, is_admin=admin)


def orders_side(kind: str, catalog: FakeCatalog, tmp_path: Path) -> Side[OrdersApi]:
    if kind == "fake":
        return fake_side("orders", FakeOrders(catalog))
    sink = RecordingSink()
    service = wired(
        OrdersService,
        context=None,
        db=sqlite(tmp_path, orders_models.Base.metadata),
        events=sink,
        catalog=client(CatalogApi, "catalog", LocalTransport(catalog=catalog)),
    )
    return real_side("orders", OrdersApi, service, sink)


@pytest.fixture(params=SIDES)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Shop:
    catalog, users = FakeCatalog(), FakeUsers()
    ada, bob = users.add("ada@example.com"), users.add("bob@example.com", name="Bob")
    lamp = catalog.add("Lamp", price_cents=2500, stock=5, currency="GBP")
    orders = orders_side(request.param, catalog, tmp_path)
    return Shop(orders, catalog, users, ada, bob, lamp)


def test_an_order_takes_stock_and_is_priced_by_the_reservation(shop: Shop) -> None:
    order = shop.buy(2)
    assert (order.status, order.user_id, order.product_id, order.quantity) == (
        "pending",
        shop.ada.id,
        shop.lamp.id,
        2,
    )
    assert (order.unit_price, order.total, order.currency) == (2500, 5000, "GBP")
    assert order.created_at == order.updated_at
    assert shop.stock() == 3 and len(shop.catalog.reservations) == 1
    assert shop.orders.api.get_order(order.id, shop.viewer()) == order
    [event] = shop.orders.events
    assert isinstance(event, OrderCreated)
    assert (event.order_id, event.user_id, event.product_id, event.quantity) == (
        order.id,
        shop.ada.id,
        shop.lamp.id,
        2,
    )
    assert (event.total_cents, event.currency) == (5000, "GBP")  # what analytics counts


def test_an_unknown_product_is_not_found_and_no_stock_is_a_conflict(shop: Shop) -> None:
    with pytest.raises(NotFound, match="product not found"):
        shop.orders.api.create_order(shop.ada.id, OrderCreate(product_id=999, quantity=1))
    with pytest.raises(Conflict, match="not enough stock"):
        shop.buy(6)
    assert shop.stock() == 5 and shop.catalog.reservations == {}
    assert shop.orders.api.list_orders(shop.ada.id, OrderQuery()).items == []
    assert shop.orders.events == []


def test_an_unknown_order_is_not_found(shop: Shop) -> None:
    admin = shop.viewer(admin=True)
    for call in (
        lambda: shop.orders.api.get_order(999, admin),
        lambda: shop.orders.api.cancel_order(999, admin),
        lambda: shop.orders.api.set_status(999, StatusChange(status="paid")),
    ):
        with pytest.raises(NotFound, match="order not found"):
            call()


def test_another_user_gets_the_not_found_of_a_missing_order(shop: Shop) -> None:
    order = shop.buy()
    with pytest.raises(NotFound) as other:
        shop.orders.api.get_order(order.id, shop.viewer(shop.bob))
    with pytest.raises(NotFound) as missing:
        shop.orders.api.get_order(999, shop.viewer(shop.bob))
    assert str(other.value) == str(missing.value)


def test_an_administrator_sees_every_order(shop: Shop) -> None:
    order = shop.buy()
    assert shop.orders.api.get_order(order.id, shop.viewer(shop.bob, admin=True)) == order


def test_the_list_is_newest_first_only_mine_and_paged(shop: Shop) -> None:
    ids = [shop.buy().id for _ in range(3)]
    shop.buy(user=shop.bob)
    page = shop.orders.api.list_orders(shop.ada.id, OrderQuery(limit=2))
    assert ([o.id for o in page.items], page.limit, page.offset) == (ids[::-1][:2], 2, 0)
    rest = shop.orders.api.list_orders(shop.ada.id, OrderQuery(offset=2))
    assert [o.id for o in rest.items] == ids[:1]
    assert shop.orders.api.list_orders(999, OrderQuery()).items == []


def test_an_idempotency_key_replays_the_order_and_takes_stock_once(shop: Shop) -> None:
    first = shop.buy(2, key="attempt-1")
    assert shop.buy(2, key="attempt-1") == first
    assert shop.stock() == 3 and len(shop.orders.events) == 1


def test_an_idempotency_key_reused_for_another_order_is_a_conflict(shop: Shop) -> None:
    shop.buy(1, key="k")
    assert shop.buy(1, user=shop.bob, key="k").user_id == shop.bob.id  # each user's own key
    with pytest.raises(Conflict, match="different order"):
        shop.buy(2, key="k")
    assert shop.stock() == 3 and len(shop.orders.events) == 2


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


def move_to(shop: Shop, order: OrderOut, status: str) -> None:
    for step in PATH_TO[status]:
        shop.orders.api.set_status(order.id, StatusChange(status=step))


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_a_legal_transition_applies_and_is_announced(shop: Shop, old: str, new: str) -> None:
    order = shop.buy(2)
    move_to(shop, order, old)
    changed = shop.orders.api.set_status(order.id, StatusChange(status=new))
    assert changed.status == new and changed.updated_at >= order.updated_at
    event = shop.orders.events[-1]
    assert isinstance(event, OrderStatusChanged)
    assert (event.order_id, event.user_id, event.old_status, event.new_status) == (
        order.id,
        shop.ada.id,
        old,
        new,
    )
    assert shop.stock() == (5 if new == "cancelled" else 3)


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_an_illegal_transition_is_a_conflict(shop: Shop, old: str, new: str) -> None:
    order = shop.buy(2)
    move_to(shop, order, old)
    announced = len(shop.orders.events)
    with pytest.raises(Conflict, match=f"cannot become {new}"):
        shop.orders.api.set_status(order.id, StatusChange(status=new))
    assert shop.orders.api.get_order(order.id, shop.viewer()).status == old
    assert len(shop.orders.events) == announced


def test_cancel_stores_the_move_then_gives_the_stock_back_once(shop: Shop) -> None:
    order = shop.buy(2)
    cancelled = shop.orders.api.cancel_order(order.id, shop.viewer())
    assert cancelled.status == "cancelled" and shop.stock() == 5
    event = shop.orders.events[-1]
    assert isinstance(event, OrderStatusChanged)
    assert (event.old_status, event.new_status) == ("pending", "cancelled")
    assert shop.catalog.released == {event.order_ref} == set(shop.catalog.reservations)
    with pytest.raises(Conflict):
        shop.orders.api.cancel_order(order.id, shop.viewer())
    assert shop.stock() == 5 and len(shop.orders.events) == 2


def test_another_user_cannot_cancel_and_the_stock_stays(shop: Shop) -> None:
    order = shop.buy(2)
    with pytest.raises(NotFound, match="order not found"):
        shop.orders.api.cancel_order(order.id, shop.viewer(shop.bob))
    assert shop.orders.api.get_order(order.id, shop.viewer()).status == "pending"
    assert shop.stock() == 3


def test_an_administrator_cancels_a_paid_order(shop: Shop) -> None:
    order = shop.buy(2)
    move_to(shop, order, "paid")
    cancelled = shop.orders.api.cancel_order(order.id, shop.viewer(shop.bob, admin=True))
    assert cancelled.status == "cancelled" and shop.stock() == 5


def test_a_failed_release_keeps_the_cancel_and_the_catalogs_handler_releases(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The release after a cancel is best-effort; the catalog's event handler is the guarantee."""
    order = shop.buy(2)

    def down(order_ref: Any) -> bool:
        raise ConnectionError("catalog down")

    monkeypatch.setattr(shop.catalog, "release_stock", down)
    with caplog.at_level(logging.ERROR):
        cancelled = shop.orders.api.cancel_order(order.id, shop.viewer())
    assert cancelled.status == "cancelled" and shop.stock() == 3
    assert "stock not released" in caplog.text
    monkeypatch.undo()
    event = shop.orders.events[-1]
    assert isinstance(event, OrderStatusChanged) and event.order_ref in shop.catalog.reservations
    assert shop.catalog.on_order_status_changed(event) is True
    assert shop.catalog.on_order_status_changed(event) is False  # redelivered
    assert shop.stock() == 5


def test_a_reserve_without_an_answer_gives_back_whatever_was_taken(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    reserve_stock = shop.catalog.reserve_stock

    def lost_reply(request: Any) -> Reservation:
        reserve_stock(request)  # the stock is taken...
        raise TimeoutError("catalog.reserve_stock did not answer")  # ...the answer is lost

    monkeypatch.setattr(shop.catalog, "reserve_stock", lost_reply)
    with pytest.raises(Unavailable):
        shop.buy(2)
    assert shop.stock() == 5 and shop.orders.events == []


def test_order_ref_states_name_stored_orders_with_their_status(shop: Shop) -> None:
    kept, cancelled = shop.buy(), shop.buy()
    refs = list(shop.catalog.reservations)
    shop.orders.api.cancel_order(cancelled.id, shop.viewer())
    move_to(shop, kept, "shipped")
    asked = OrderRefs(refs=[*shop.catalog.reservations, "never-reserved"])
    assert shop.orders.api.order_ref_states(asked) == [
        OrderRefState(order_ref=refs[0], status="shipped"),
        OrderRefState(order_ref=refs[1], status="cancelled"),
    ]
    assert shop.orders.api.order_ref_states(OrderRefs(refs=[])) == []


def test_past_the_cap_of_pending_orders_a_new_one_is_a_conflict(shop: Shop) -> None:
    shop.catalog.update_product(shop.lamp.id, ProductPatch(stock=100))
    placed = [shop.buy(key=f"k{i}") for i in range(10)]
    with pytest.raises(Conflict, match="awaiting payment"):
        shop.buy()
    assert shop.buy(key="k3") == placed[3]  # a retry is not a new order
    assert shop.buy(user=shop.bob).user_id == shop.bob.id  # the cap is per user
    shop.orders.api.set_status(placed[0].id, StatusChange(status="paid"))
    shop.buy()  # a paid order no longer counts
    with pytest.raises(Conflict, match="awaiting payment"):
        shop.buy()
    assert shop.stock() == 100 - 12


ORDER = {"product_id": 1, "quantity": 1}
ADMIN = {"user_id": 1, "is_admin": True}
ORDERS_BROKEN: list[tuple[str, list[Any], list[str]]] = [
    *[
        ("create_order", [1, {**ORDER, "quantity": bad}], ["order.quantity"])
        for bad in (0, -1, 101, "2", 1e9, 2.0, None, True)
    ],
    ("create_order", [1, {**ORDER, "product_id": "1"}], ["order.product_id"]),
    ("create_order", [1, {"quantity": 1}], ["order.product_id"]),
    ("create_order", [1, {**ORDER, "x": 1}], ["order.x"]),
    ("create_order", [1, "lamp"], ["order"]),
    ("create_order", [1, None], ["order"]),
    *[("create_order", [bad, ORDER], ["user_id"]) for bad in (0, "1", True, None)],
    *[
        ("create_order", [1, ORDER, bad], ["idempotency_key"])
        for bad in ("", "x" * 65, "nul\x00", 7)
    ],
    ("create_order", [1], []),
    ("list_orders", [1, {"limit": 0}], ["query.limit"]),
    ("list_orders", [1, {"limit": 101}], ["query.limit"]),
    ("list_orders", [1, {"offset": -1}], ["query.offset"]),
    ("list_orders", [1, {"limit": "5"}], ["query.limit"]),
    ("list_orders", [1, {"page": 2}], ["query.page"]),
    ("list_orders", [1, None], ["query"]),
    *[
        ("get_order", [1, {"user_id": 2, "is_admin": bad}], ["viewer.is_admin"])
        for bad in (1, "true", "yes", [True])
    ],
    *[("get_order", [bad, ADMIN], ["order_id"]) for bad in (0, -1, "1", True, None, 2**64)],
    ("cancel_order", [1, {"user_id": 0}], ["viewer.user_id"]),
    ("cancel_order", [1, {"user_id": 2, "is_admin": "true"}], ["viewer.is_admin"]),
    ("set_status", [1, {"status": "lost"}], ["change.status"]),
    ("set_status", [1, {}], ["change.status"]),
    ("set_status", [1, {"status": None}], ["change.status"]),
    ("set_status", [1, "paid"], ["change"]),
    ("order_ref_states", ["not-a-list"], ["refs"]),
    ("order_ref_states", [{"refs": "x"}], ["refs.refs"]),
]


@pytest.mark.parametrize(("method", "args", "fields"), ORDERS_BROKEN)
def test_orders_refuse_a_payload_that_breaks_the_contract(
    shop: Shop, method: str, args: list[Any], fields: list[str]
) -> None:
    order = shop.buy()
    assert (order.id, shop.ada.id, shop.lamp.id) == (1, 1, 1)
    assert invalid_fields(lambda: shop.orders.raw(method, *args)) == fields
    # Refused before any work: nothing reserved, moved or announced, and nobody made admin.
    assert len(shop.catalog.reservations) == 1 and shop.stock() == 4
    assert shop.orders.api.get_order(order.id, shop.viewer()) == order
    assert len(shop.orders.events) == 1


# ================================================================= courses

TEACHER, OTHER_TEACHER, STUDENT, OTHER_STUDENT = 1, 2, 3, 4
ADMIN_VIEWER = Viewer(user_id=99, is_admin=True)
RUNNER = "message-1"


@dataclass(frozen=True)
class Campus:
    """A courses service, and the end of its publishing pipeline (which runs elsewhere)."""

    courses: Side[CoursesApi]
    succeed: Callable[[str], object]
    fail: Callable[[str, str], object]

    @property
    def api(self) -> CoursesApi:
        return self.courses.api

    def draft(self, lessons: int = 1, capacity: int | None = None) -> CourseOut:
        """A course of TEACHER with ``lessons`` text lessons."""
        course = self.api.create_course(
            TEACHER, CourseCreate(title=" Python ", description="From zero", capacity=capacity)
        )
        for number in range(lessons):
            text = LessonCreate(title=f"Lesson {number}", text=f"Lesson {number}: decorators.")
            self.api.add_lesson(course.id, viewer(TEACHER), text)
        return self.api.get_course(course.id, viewer(TEACHER))

    def published(self, lessons: int = 1, capacity: int | None = None) -> CourseOut:
        course = self.draft(lessons, capacity)
        self.succeed(self.api.publish(course.id, viewer(TEACHER)).id)
        return self.api.get_course(course.id, viewer(TEACHER))


def viewer(user_id: int) -> Viewer:
    return Viewer(user_id=user_id)


def courses_side(kind: str, tmp_path: Path) -> Campus:
    if kind == "fake":
        fake = FakeCourses()
        return Campus(
            fake_side("courses", fake),
            succeed=fake.run_job,
            fail=fake.fail_job,
        )
    sink = RecordingSink()
    db = sqlite(tmp_path, courses_models.Base.metadata)
    service = wired(
        CoursesService, context=None, db=db, events=sink, cache=FakeCache(), tasks=RecordingTasks()
    )

    def succeed(job_id: str) -> None:
        claim = course_jobs.claim(db, job_id, RUNNER)
        assert claim is not None
        course_jobs.succeed(db, sink, claim, chunks=1)

    def fail(job_id: str, error: str) -> None:
        assert course_jobs.fail(db, job_id, error)

    return Campus(real_side("courses", CoursesApi, service, sink), succeed, fail)


@pytest.fixture(params=SIDES)
def campus(request: pytest.FixtureRequest, tmp_path: Path) -> Campus:
    return courses_side(request.param, tmp_path)


def test_a_new_course_is_a_draft_only_its_teacher_and_admins_see(campus: Campus) -> None:
    course = campus.draft(lessons=0)
    assert (course.instructor_id, course.title, course.description) == (
        TEACHER,
        "Python",
        "From zero",
    )
    assert (course.status, course.enrolled, course.lessons, course.published_at) == (
        "draft",
        0,
        0,
        None,
    )
    assert campus.api.get_course(course.id, ADMIN_VIEWER) == course
    for call in (
        lambda: campus.api.get_course(course.id, viewer(STUDENT)),
        lambda: campus.api.list_lessons(course.id, viewer(OTHER_TEACHER)),
        lambda: campus.api.get_course(999, viewer(TEACHER)),
    ):
        with pytest.raises(NotFound, match="course not found"):
            call()
    assert campus.api.list_courses(CourseQuery()).items == []


def test_only_the_teacher_or_an_admin_changes_a_course(campus: Campus) -> None:
    draft = campus.draft()
    renamed = campus.api.update_course(draft.id, viewer(TEACHER), CoursePatch(title="Python 3"))
    assert (renamed.title, renamed.description) == ("Python 3", "From zero")
    assert renamed.updated_at >= draft.updated_at
    patch = CoursePatch(description="")
    with pytest.raises(NotFound):  # a draft does not exist for anyone else
        campus.api.update_course(draft.id, viewer(OTHER_TEACHER), patch)
    assert campus.api.update_course(draft.id, ADMIN_VIEWER, patch).description == ""
    published = campus.published()
    with pytest.raises(Forbidden):  # visible, not theirs
        campus.api.update_course(published.id, viewer(OTHER_TEACHER), patch)
    with pytest.raises(Forbidden):
        campus.api.add_lesson(published.id, viewer(STUDENT), LessonCreate(title="x", text="y"))
    with pytest.raises(Forbidden):
        campus.api.publish(published.id, viewer(STUDENT))


def test_a_capacity_below_the_students_enrolled_is_a_conflict(campus: Campus) -> None:
    course = campus.published(capacity=5)
    campus.api.enroll(course.id, STUDENT)
    campus.api.enroll(course.id, OTHER_STUDENT)
    with pytest.raises(Conflict):
        campus.api.update_course(course.id, viewer(TEACHER), CoursePatch(capacity=1))
    changed = campus.api.update_course(course.id, viewer(TEACHER), CoursePatch(capacity=2))
    assert (changed.capacity, changed.enrolled) == (2, 2)


def test_lessons_go_last_or_where_asked_and_count(campus: Campus) -> None:
    course = campus.draft(lessons=2)
    teacher = viewer(TEACHER)
    first = campus.api.add_lesson(
        course.id, teacher, LessonCreate(title="Intro", text="Hi", position=0)
    )
    stored = StoredFile(sha256="a" * 64, size=1234, kind="pdf", filename="notes.pdf")
    pdf = campus.api.add_lesson(course.id, teacher, LessonCreate(title=" Notes ", file=stored))
    assert (first.position, first.kind, first.size) == (0, "text", 2)
    assert (pdf.title, pdf.position, pdf.kind, pdf.size) == ("Notes", 3, "pdf", 1234)
    listed = campus.api.list_lessons(course.id, teacher)
    assert [(lesson.title, lesson.position) for lesson in listed] == [
        ("Intro", 0),
        ("Lesson 0", 1),
        ("Lesson 1", 2),
        ("Notes", 3),
    ]
    assert campus.api.get_course(course.id, teacher).lessons == 4
    with pytest.raises(NotFound):
        campus.api.add_lesson(course.id, viewer(STUDENT), LessonCreate(title="x", text="y"))


def test_publishing_queues_a_job_and_its_success_publishes(campus: Campus) -> None:
    course = campus.draft(lessons=2)
    with pytest.raises(Conflict, match="at least one lesson"):
        campus.api.publish(campus.draft(lessons=0).id, viewer(TEACHER))
    job = campus.api.publish(course.id, viewer(TEACHER))
    assert (job.course_id, job.status, job.step, job.step_index, job.percent) == (
        course.id,
        "queued",
        "validate",
        0,
        0,
    )
    assert (job.steps_total, job.error) == (6, None)
    assert campus.api.get_course(course.id, viewer(TEACHER)).status == "publishing"
    with pytest.raises(Conflict, match="already being published"):
        campus.api.publish(course.id, viewer(TEACHER))
    with pytest.raises(Conflict):
        campus.api.add_lesson(course.id, viewer(TEACHER), LessonCreate(title="x", text="y"))
    with pytest.raises(NotFound):  # still a draft for students
        campus.api.get_course(course.id, viewer(STUDENT))

    campus.succeed(job.id)

    done = campus.api.get_job(job.id, viewer(TEACHER))
    assert (done.status, done.step, done.step_index, done.percent) == (
        "succeeded",
        "publish",
        6,
        100,
    )
    published = campus.api.get_course(course.id, viewer(STUDENT))
    assert published.status == "published" and published.published_at is not None
    assert campus.api.list_courses(CourseQuery()).items == [published]
    [event] = [e for e in campus.courses.events if isinstance(e, CoursePublished)]
    assert (event.course_id, event.instructor_id, event.job_id) == (course.id, TEACHER, job.id)


def test_a_failed_job_fails_the_course_and_it_can_be_published_again(campus: Campus) -> None:
    course = campus.draft()
    job = campus.api.publish(course.id, viewer(TEACHER))
    campus.fail(job.id, "the embedder refused")
    failed = campus.api.get_job(job.id, ADMIN_VIEWER)
    assert (failed.status, failed.error) == ("failed", "the embedder refused")
    assert campus.api.get_course(course.id, viewer(TEACHER)).status == "failed"
    again = campus.api.publish(course.id, viewer(TEACHER))
    assert again.id != job.id and again.status == "queued"


def test_a_published_course_stays_visible_while_published_again(campus: Campus) -> None:
    course = campus.published()
    first_published = course.published_at
    job = campus.api.publish(course.id, viewer(TEACHER))
    during = campus.api.get_course(course.id, viewer(STUDENT))
    assert (during.status, during.published_at) == ("publishing", first_published)
    with pytest.raises(Conflict, match="not open"):
        campus.api.enroll(course.id, STUDENT)
    campus.succeed(job.id)
    after = campus.api.get_course(course.id, viewer(STUDENT))
    assert (after.status, after.published_at) == ("published", first_published)


def test_a_job_is_for_its_teacher_and_admins_only(campus: Campus) -> None:
    job = campus.api.publish(campus.draft().id, viewer(TEACHER))
    assert campus.api.get_job(job.id, ADMIN_VIEWER) == campus.api.get_job(job.id, viewer(TEACHER))
    for who, job_id in ((viewer(STUDENT), job.id), (viewer(TEACHER), "f" * 32)):
        with pytest.raises(NotFound, match="job not found"):
            campus.api.get_job(job_id, who)


def test_recent_jobs_are_every_courses_newest_first_for_admins_only(campus: Campus) -> None:
    assert campus.api.recent_jobs(RecentJobsQuery(), ADMIN_VIEWER) == []
    first = campus.api.publish(campus.draft().id, viewer(TEACHER))
    campus.succeed(first.id)
    second = campus.api.publish(campus.draft().id, viewer(TEACHER))
    recent = campus.api.recent_jobs(RecentJobsQuery(), ADMIN_VIEWER)
    assert [(job.id, job.status) for job in recent] == [
        (second.id, "queued"),
        (first.id, "succeeded"),
    ]
    assert recent[1] == campus.api.get_job(first.id, ADMIN_VIEWER)
    assert campus.api.recent_jobs(RecentJobsQuery(limit=1), ADMIN_VIEWER) == [recent[0]]
    for who in (viewer(TEACHER), viewer(STUDENT)):
        with pytest.raises(Forbidden, match="administrators only"):
            campus.api.recent_jobs(RecentJobsQuery(), who)


def test_enrolment_takes_a_seat_once_within_the_capacity(campus: Campus) -> None:
    course = campus.published(capacity=1)
    enrolment = campus.api.enroll(course.id, STUDENT)
    assert (enrolment.course_id, enrolment.user_id) == (course.id, STUDENT)
    with pytest.raises(Conflict, match="already enrolled"):
        campus.api.enroll(course.id, STUDENT)
    with pytest.raises(Conflict, match="full"):
        campus.api.enroll(course.id, OTHER_STUDENT)
    assert campus.api.get_course(course.id, viewer(STUDENT)).enrolled == 1
    events = [e for e in campus.courses.events if isinstance(e, EnrollmentCreated)]
    assert [(e.course_id, e.user_id) for e in events] == [(course.id, STUDENT)]


def test_a_draft_cannot_be_enrolled_in(campus: Campus) -> None:
    course = campus.draft()
    with pytest.raises(NotFound):
        campus.api.enroll(course.id, STUDENT)
    with pytest.raises(Conflict, match="not open"):  # its teacher sees it: not open yet
        campus.api.enroll(course.id, TEACHER)
    with pytest.raises(NotFound):
        campus.api.enroll(999, STUDENT)


def test_my_courses_are_the_newest_enrolment_first(campus: Campus) -> None:
    first, second = campus.published(), campus.published()
    campus.api.enroll(first.id, STUDENT)
    campus.api.enroll(second.id, STUDENT)
    mine = campus.api.my_courses(STUDENT)
    assert [m.course.id for m in mine] == [second.id, first.id]
    assert mine[0].enrolled_at >= mine[1].enrolled_at
    assert campus.api.my_courses(OTHER_STUDENT) == []


def test_completing_a_lesson_counts_once_for_an_enrolled_student(campus: Campus) -> None:
    course = campus.published(lessons=3)
    lesson = campus.api.list_lessons(course.id, viewer(STUDENT))[0]
    with pytest.raises(Forbidden):
        campus.api.complete_lesson(lesson.id, STUDENT)
    with pytest.raises(NotFound, match="not enrolled"):
        campus.api.get_progress(course.id, STUDENT)
    campus.api.enroll(course.id, STUDENT)
    assert campus.api.get_progress(course.id, STUDENT).completed == 0
    done = campus.api.complete_lesson(lesson.id, STUDENT)
    assert (done.course_id, done.user_id, done.completed, done.total, done.percent) == (
        course.id,
        STUDENT,
        1,
        3,
        33,
    )
    assert campus.api.complete_lesson(lesson.id, STUDENT) == done  # idempotent
    assert campus.api.get_progress(course.id, STUDENT) == done
    events = [e for e in campus.courses.events if isinstance(e, ProgressUpdated)]
    assert [(e.lesson_id, e.completed, e.total) for e in events] == [(lesson.id, 1, 3)]
    with pytest.raises(NotFound, match="lesson not found"):
        campus.api.complete_lesson(999, STUDENT)


def test_a_lesson_of_a_draft_is_not_found(campus: Campus) -> None:
    course = campus.draft()
    [lesson] = campus.api.list_lessons(course.id, viewer(TEACHER))
    for user in (STUDENT, TEACHER):
        with pytest.raises(NotFound, match="lesson not found"):
            campus.api.complete_lesson(lesson.id, user)


def test_access_to_the_content_is_for_teachers_admins_and_students(campus: Campus) -> None:
    draft, course = campus.draft(), campus.published()
    campus.api.enroll(course.id, STUDENT)
    for who in (viewer(TEACHER), ADMIN_VIEWER, viewer(STUDENT)):
        assert campus.api.check_access(course.id, who).id == course.id
    assert campus.api.check_access(draft.id, viewer(TEACHER)).id == draft.id
    with pytest.raises(Forbidden):  # visible, not enrolled
        campus.api.check_access(course.id, viewer(OTHER_STUDENT))
    with pytest.raises(NotFound):  # cannot see it at all
        campus.api.check_access(draft.id, viewer(STUDENT))


def test_the_course_list_is_published_newest_first_and_paged(campus: Campus) -> None:
    ids = [campus.published().id for _ in range(3)]
    campus.draft()
    page = campus.api.list_courses(CourseQuery(limit=2))
    assert ([c.id for c in page.items], page.total, page.limit, page.offset) == (
        ids[::-1][:2],
        3,
        2,
        0,
    )
    assert [c.id for c in campus.api.list_courses(CourseQuery(offset=2)).items] == ids[:1]


TEACHER_WIRE = {"user_id": TEACHER}
COURSES_BROKEN: list[tuple[str, list[Any], list[str]]] = [
    ("create_course", [TEACHER, {"title": ""}], ["course.title"]),
    ("create_course", [TEACHER, {"title": "x", "capacity": 0}], ["course.capacity"]),
    ("create_course", [TEACHER, {"title": "x", "owner": 2}], ["course.owner"]),
    ("create_course", [0, {"title": "x"}], ["instructor_id"]),
    ("update_course", [1, TEACHER_WIRE, {}], ["patch"]),
    ("update_course", [1, TEACHER_WIRE, {"title": None}], ["patch"]),
    ("add_lesson", [1, TEACHER_WIRE, {"title": "x"}], ["lesson"]),
    (
        "add_lesson",
        [1, TEACHER_WIRE, {"title": "x", "text": "y", "position": -1}],
        ["lesson.position"],
    ),
    ("add_lesson", [1, TEACHER_WIRE, {"title": "x", "text": "nul\x00"}], ["lesson.text"]),
    ("get_job", ["not-a-job", TEACHER_WIRE], ["job_id"]),
    ("get_course", [1, {"user_id": 1, "is_admin": "yes"}], ["viewer.is_admin"]),
    ("list_courses", [{"limit": 0}], ["query.limit"]),
    ("recent_jobs", [{"limit": 51}, {"user_id": 99, "is_admin": True}], ["query.limit"]),
    ("enroll", [1, "3"], ["user_id"]),
    ("complete_lesson", [True, 3], ["lesson_id"]),
    ("get_progress", [1], []),
]


@pytest.mark.parametrize(("method", "args", "fields"), COURSES_BROKEN)
def test_courses_refuse_a_payload_that_breaks_the_contract(
    campus: Campus, method: str, args: list[Any], fields: list[str]
) -> None:
    course = campus.draft()
    assert course.id == 1
    assert invalid_fields(lambda: campus.courses.raw(method, *args)) == fields
    assert campus.api.get_course(course.id, viewer(TEACHER)) == course  # nothing changed
    assert campus.courses.events == []


# ================================================================= analytics


@dataclass(frozen=True)
class Ledger:
    """An analytics service: ``api`` its Protocol, ``deliver`` hands it an event as the bus
    does (the event's wire body, to its handler of that event), ``raw`` calls it with wire data."""

    kind: str
    api: AnalyticsApi
    transport: LocalTransport
    target: Any

    def deliver(self, *events: Event) -> None:
        for event in events:
            handler = getattr(self.target, "on_" + event.type.replace(".", "_"))
            handler(json.loads(json.dumps(event.to_wire())))

    def raw(self, method: str, *args: Any) -> Any:
        return self.transport.call("analytics", method, *args)


def analytics_side(kind: str, tmp_path: Path) -> Ledger:
    if kind == "fake":
        fake = FakeAnalytics()
        return Ledger(kind, fake, LocalTransport(analytics=fake), fake)
    service = wired(
        AnalyticsService, context=None, db=sqlite(tmp_path, analytics_models.Base.metadata)
    )
    transport = LocalTransport(analytics=service)
    return Ledger(kind, client(AnalyticsApi, "analytics", transport), transport, service)


@pytest.fixture(params=SIDES)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    return analytics_side(request.param, tmp_path)


MARCH_1 = date(2024, 3, 1)


def days(first: date, count: int) -> ReportQuery:
    return ReportQuery(from_=first, to=first + timedelta(days=count - 1))


def test_the_reports_equal_the_source_services_data(ledger: Ledger) -> None:
    """Every event at least once, shuffled, a cancellation before its order (the figures'
    test's world): each report equals what the source rows say."""
    source = world()
    ledger.deliver(*deliveries(source))
    check_reports(ledger.api, source)


def test_the_fake_and_the_service_give_the_same_rows(tmp_path: Path) -> None:
    fake, real = analytics_side("fake", tmp_path), analytics_side("real", tmp_path)
    source = world(seed=3)
    for side in (fake, real):
        side.deliver(*deliveries(source, seed=5))
    whole = ReportQuery(from_=date(2024, 2, 20), to=date(2024, 3, 10))
    span = {"from_": whole.from_, "to": whole.to}
    for method, query in [
        ("signups", whole),
        ("event_counts", whole),
        ("enrollments", EnrollmentsQuery(**span)),
        *[("enrollments", EnrollmentsQuery(**span, course_id=n)) for n in (1, 2, 3, 9)],
        ("orders", OrdersReportQuery(**span)),
        *[("orders", OrdersReportQuery(**span, product_id=n)) for n in (1, 2, 3, 9)],
        *[(m, days(date(2024, 2, 28), 2)) for m in ("signups", "event_counts")],
        ("orders", OrdersReportQuery(from_=date(2024, 2, 29), to=date(2024, 3, 1))),
    ]:
        rows = fake.raw(method, query.model_dump(mode="json"))
        assert rows == real.raw(method, query.model_dump(mode="json")), (method, query)
        assert rows or method in ("enrollments", "orders"), method
    assert fake.raw("orders", {"from": "2024-02-27", "to": "2024-03-02"})  # not all empty


def test_an_event_counts_once_on_its_utc_day(ledger: Ledger) -> None:
    late = UserRegistered(user_id=1, occurred_at="2024-03-01T23:30:00-02:00")  # 01:30Z on the 2nd
    ledger.deliver(late, late, UserRegistered(user_id=2, occurred_at="2024-03-01T00:00:00Z"))
    assert [r.signups for r in ledger.api.signups(days(MARCH_1, 3))] == [1, 1, 0]
    counts = ledger.api.event_counts(days(MARCH_1, 3))
    assert [(r.day, r.event_type, r.events) for r in counts] == [
        (MARCH_1, "user.registered", 1),
        (date(2024, 3, 2), "user.registered", 1),
    ]


def test_a_cancellation_counts_on_its_day_under_its_order_whichever_comes_first(
    ledger: Ledger,
) -> None:
    def placed(order_id: int, **amount: Any) -> OrderCreated:
        return OrderCreated(
            order_id=order_id,
            user_id=1,
            product_id=4,
            quantity=3,
            occurred_at="2024-03-01T10:00:00Z",
            **amount,
        )

    def cancelled(order_id: int) -> OrderStatusChanged:
        return OrderStatusChanged(
            order_id=order_id,
            user_id=1,
            order_ref=f"ref-{order_id}",
            old_status="pending",
            new_status="cancelled",
            occurred_at="2024-03-02T10:00:00Z",
        )

    priced = {"total_cents": 1500, "currency": "EUR"}
    ledger.deliver(cancelled(1), placed(1, **priced), placed(2, **priced), cancelled(2))
    ledger.deliver(placed(3), cancelled(3), cancelled(3))  # an older event: no amount
    rows = [
        (
            r.day.day,
            r.currency,
            r.orders,
            r.items,
            r.revenue_cents,
            r.cancellations,
            r.cancelled_cents,
        )
        for r in ledger.api.orders(OrdersReportQuery(from_=MARCH_1, to=date(2024, 3, 2)))
    ]
    assert rows == [
        (1, None, 1, 3, 0, 0, 0),
        (1, "EUR", 2, 6, 3000, 0, 0),
        (2, None, 0, 0, 0, 1, 0),
        (2, "EUR", 0, 0, 0, 2, 3000),
    ]


def test_a_broken_event_is_a_contract_violation(ledger: Ledger) -> None:
    with pytest.raises(ContractViolation):
        ledger.target.on_order_created({"type": "order.created", "order_id": "seven"})
    assert ledger.api.event_counts(days(MARCH_1, 1)) == []


def test_the_longest_range_is_a_year(ledger: Ledger) -> None:
    rows = ledger.api.signups(ReportQuery(from_=date(2024, 1, 1), to=date(2024, 12, 31)))
    assert len(rows) == MAX_DAYS and {r.signups for r in rows} == {0}


SPAN = {"from": "2024-03-01", "to": "2024-03-03"}
ANALYTICS_BROKEN: list[tuple[str, list[Any], list[str]]] = [
    *[
        (method, [{"from": "2024-03-02", "to": "2024-03-01"}], ["query"])
        for method in ("signups", "enrollments", "orders", "event_counts")
    ],
    *[
        (method, [{"from": "2023-12-31", "to": "2024-12-31"}], ["query"])
        for method in ("signups", "enrollments", "orders", "event_counts")
    ],
    ("signups", [{"from": "2024-03-01"}], ["query.to"]),
    ("signups", [{"to": "2024-03-01"}], ["query.from"]),
    *[
        ("signups", [{**SPAN, "from": bad}], ["query.from"])
        for bad in ("01/03/2024", "2024-3-1", "2024-03-01T00:00:00", "2024-02-30", 1709251200, None)
    ],
    ("event_counts", [{**SPAN, "to": "2023-02-29"}], ["query.to"]),
    ("signups", [{**SPAN, "extra": 1}], ["query.extra"]),
    *[("enrollments", [{**SPAN, "course_id": bad}], ["query.course_id"]) for bad in (0, "4", True)],
    ("orders", [{**SPAN, "product_id": -1}], ["query.product_id"]),
    ("orders", ["2024-03-01"], ["query"]),
    ("orders", [], []),
]


@pytest.mark.parametrize(("method", "args", "fields"), ANALYTICS_BROKEN)
def test_analytics_refuses_a_query_that_breaks_the_contract(
    ledger: Ledger, method: str, args: list[Any], fields: list[str]
) -> None:
    assert invalid_fields(lambda: ledger.raw(method, *args)) == fields


# ================================================================= assistant


@pytest.mark.parametrize("check", assistant_contract.CHECKS, ids=lambda check: check.__name__)
def test_the_fake_assistant_keeps_the_assistant_s_contract(
    check: Callable[[assistant_contract.AssistantSide], None],
) -> None:
    """The checks of tests/integration/test_assistant_contract.py (where the real service,
    on MongoDB and Redis, meets them too), on the fake alone."""
    check(assistant_contract.fake_side())


# ================================================================= every service


def public_methods(protocol: type[Any]) -> list[str]:
    return [
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def signature(fn: Callable[..., Any]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    parameters = [
        (p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"
    ]
    return parameters, get_type_hints(fn, include_extras=True)


API = [
    (UsersApi, UsersService, FakeUsers),
    (CatalogApi, CatalogService, FakeCatalog),
    (OrdersApi, OrdersService, FakeOrders),
    (NotificationsApi, NotificationsService, FakeNotifications),
    (CoursesApi, CoursesService, FakeCourses),
    (ContentApi, ContentService, FakeContent),
    (AssistantApi, AssistantService, FakeAssistant),
    (AnalyticsApi, AnalyticsService, FakeAnalytics),
]


@pytest.mark.parametrize(("protocol", "service", "fake"), API)
def test_the_service_and_its_fake_expose_the_protocol_as_it_is(
    protocol: type[Any], service: type[Any], fake: type[Any]
) -> None:
    """Same names, parameters, defaults and types: ``expose`` validates by the service's own."""
    for name in public_methods(protocol):
        expected = signature(getattr(protocol, name))
        assert signature(getattr(service, name)) == expected, f"{service.__name__}.{name}"
        assert signature(getattr(fake, name)) == expected, f"{fake.__name__}.{name}"
        assert getattr(getattr(service, name), "nameko_entrypoints", None), f"{name} not exposed"


def test_fakes_answer_through_the_wire() -> None:
    """Behind a transport (as the gateway's tests may use them), the fakes speak the same JSON."""
    catalog, users, notifications = FakeCatalog(), FakeUsers(), FakeNotifications()
    transport = LocalTransport(
        catalog=catalog,
        users=users,
        orders=FakeOrders(catalog),
        notifications=notifications,
    )
    ada = client(UsersApi, "users", transport).register(
        RegisterRequest(email=ANN, password=PASSWORD, name="Ann")
    )
    lamp = client(CatalogApi, "catalog", transport).create_product(
        ProductCreate(name="Lamp", price_cents=100, stock=2)
    )
    orders = client(OrdersApi, "orders", transport)
    order = orders.create_order(ada.id, OrderCreate(product_id=lamp.id, quantity=2), "key-1")
    assert orders.get_order(order.id, Viewer(user_id=ada.id)) == order
    with pytest.raises(Conflict, match="not enough stock"):
        orders.create_order(ada.id, OrderCreate(product_id=lamp.id, quantity=1))
    seeded = notifications.add(ada.id, order_id=order.id, kind="order.created")
    listed = client(NotificationsApi, "notifications", transport).list_for_user(
        ListRequest(user_id=ada.id)
    )
    assert listed == NotificationPage(items=[seeded], next_before=None)
