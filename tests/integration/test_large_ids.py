"""The largest id the contracts accept, on SQLite, PostgreSQL and MariaDB, in every service with
SQL ids: not found, never a database error; one past it never reaches the database.

The id columns are 32-bit INTEGERs: PostgreSQL refuses to compare one with 2**31 (a
DataError, so a 500), which is why ``contracts.base.ID_MAX`` is 2**31-1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlalchemy.orm import sessionmaker

from contracts.analytics import EnrollmentsQuery, OrdersReportQuery
from contracts.base import ID_MAX, Viewer
from contracts.catalog import CatalogApi, ProductPatch
from contracts.courses import CoursePatch, LessonCreate
from contracts.errors import InvalidInput, NotFound
from mesh.outbox import OutboxHandle
from mesh.typed import client
from services.analytics import models as analytics_models
from services.analytics import reports
from services.catalog import models as catalog_models
from services.catalog import products, wishlist
from services.catalog.service import CatalogService
from services.courses import courses, enrollment, progress
from services.courses import models as courses_models
from services.orders import logic as orders
from services.orders import models as orders_models
from services.users import logic as users
from services.users import models as users_models
from tests.integration.engines import SERVERS, fresh_schema
from tests.unit.fakes import FakeCache, RecordingSink
from tests.unit.service_fakes import FakeCatalog, FakeOrders, LocalTransport, wired

pytestmark = pytest.mark.integration

ENGINES = ["sqlite", *sorted(SERVERS)]
ADMIN = Viewer(user_id=1, is_admin=True)
Session = Callable[[MetaData], sessionmaker]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """Sessions on a fresh schema of the given metadata, on this test's engine."""
    with_schemas: list[Any] = []

    def open_schema(metadata: MetaData) -> sessionmaker:
        context = fresh_schema(request.param, metadata, tmp_path)
        with_schemas.append(context)
        return context.__enter__()

    yield open_schema
    for context in reversed(with_schemas):
        context.__exit__(None, None, None)


def events_of(outbox: Any) -> OutboxHandle:
    return OutboxHandle(outbox, on_commit=lambda _session: None)


def not_found(*calls: Callable[[], Any]) -> None:
    for call in calls:
        with pytest.raises(NotFound):
            call()


def test_users(engine: Session) -> None:
    sessions = engine(users_models.Base.metadata)
    not_found(lambda: users.get_user(sessions, FakeCache(), ID_MAX))


def test_catalog(engine: Session) -> None:
    sessions = engine(catalog_models.Base.metadata)
    events = events_of(catalog_models.outbox)
    not_found(
        lambda: products.get_product(sessions, ID_MAX),
        lambda: products.update_product(sessions, events, ID_MAX, ProductPatch(stock=1)),
        lambda: products.delete_product(sessions, events, ID_MAX),
        lambda: wishlist.wishlist_add(sessions, ID_MAX, ID_MAX),
    )
    assert wishlist.wishlisted_by(sessions, ID_MAX) == []


def test_catalog_service_refuses_an_id_past_the_columns(engine: Session) -> None:
    sessions = engine(catalog_models.Base.metadata)
    service = wired(
        CatalogService,
        context=None,
        db=sessions,
        events=RecordingSink(),
        orders=FakeOrders(FakeCatalog()),
    )
    transport = LocalTransport(catalog=service)
    catalog = client(CatalogApi, "catalog", transport)
    not_found(lambda: catalog.get_product(ID_MAX))
    with pytest.raises(InvalidInput):  # on PostgreSQL this was a DataError: a 500
        transport.call("catalog", "get_product", ID_MAX + 1)


def test_orders(engine: Session) -> None:
    sessions = engine(orders_models.Base.metadata)
    not_found(
        lambda: orders.get_order(sessions, ID_MAX, ADMIN),
        lambda: orders.get_order(sessions, 1, Viewer(user_id=ID_MAX)),
    )


def test_courses(engine: Session) -> None:
    sessions = engine(courses_models.Base.metadata)
    events = events_of(courses_models.outbox)
    lesson = LessonCreate(title="One", text="Some text.")
    not_found(
        lambda: courses.get_course(sessions, ID_MAX, ADMIN),
        lambda: courses.update_course(sessions, ID_MAX, ADMIN, CoursePatch(title="T")),
        lambda: courses.add_lesson(sessions, ID_MAX, ADMIN, lesson),
        lambda: courses.list_lessons(sessions, ID_MAX, ADMIN),
        lambda: enrollment.enroll(sessions, events, FakeCache(), ID_MAX, ID_MAX),
        lambda: progress.get_progress(sessions, ID_MAX, ID_MAX),
        lambda: progress.complete_lesson(sessions, events, ID_MAX, ID_MAX),
    )


def test_analytics(engine: Session) -> None:
    sessions = engine(analytics_models.Base.metadata)
    span = {"from": date(2026, 1, 1), "to": date(2026, 1, 31)}
    enrollments = EnrollmentsQuery.model_validate({**span, "course_id": ID_MAX})
    assert reports.enrollments(sessions, enrollments) == []
    orders_query = OrdersReportQuery.model_validate({**span, "product_id": ID_MAX})
    assert reports.orders(sessions, orders_query) == []
