"""The reports equal what the source services hold.

A small world is simulated as the source services store it (users, orders with their status
history, enrolments, lesson completions), each change publishing its event as the outbox
does. The events reach analytics duplicated and shuffled (a cancellation before its order);
the expected figures are computed from the source rows alone, never from the events.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.analytics import (
    AnalyticsApi,
    EnrollmentsQuery,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
)
from contracts.base import Event
from contracts.catalog import FieldChange, ProductUpdated
from contracts.courses import CoursePublished, EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged, Status
from contracts.users import UserRegistered
from mesh.sql import make_sessionmaker
from mesh.typed import client
from services.analytics.models import Base
from services.analytics.service import AnalyticsService
from tests.unit.service_fakes import LocalTransport, wired

START = datetime(2024, 2, 27, tzinfo=UTC)  # across a leap day and a month's end
DAYS = 4
PRICES = {1: (2500, "GBP"), 2: (990, "EUR"), 3: (12_000, "EUR")}
EURO_TO_DOLLAR_AT = START + timedelta(days=2, hours=12)  # product 2 is then sold in USD
PATHS: tuple[tuple[Status, ...], ...] = (
    (),
    ("paid",),
    ("cancelled",),
    ("paid", "cancelled"),
    ("paid", "shipped", "delivered"),
)


@dataclass
class SourceOrder:
    """An orders row: its final status, and when it last changed."""

    id: int
    product_id: int
    quantity: int
    total_cents: int
    currency: str
    created_at: datetime
    status: Status = "pending"
    updated_at: datetime | None = None


@dataclass
class Source:
    """The source services' rows, and the events they published (once each, in order)."""

    users: dict[int, datetime] = field(default_factory=dict)
    orders: list[SourceOrder] = field(default_factory=list)
    enrollments: list[tuple[int, int, datetime]] = field(default_factory=list)
    completions: list[tuple[int, int, datetime]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _instant(rng: random.Random) -> datetime:
    return START + timedelta(
        seconds=rng.randrange(DAYS * 86_400), microseconds=rng.randrange(10**6)
    )


def _register(source: Source, user_id: int, at: datetime) -> None:
    source.users[user_id] = at
    source.events.append(UserRegistered(user_id=user_id, occurred_at=at))


def _order(
    source: Source, product_id: int, quantity: int, at: datetime, path: tuple[Status, ...]
) -> None:
    price, currency = PRICES[product_id]
    if product_id == 2 and at >= EURO_TO_DOLLAR_AT:
        price, currency = 1100, "USD"
    order = SourceOrder(
        len(source.orders) + 1, product_id, quantity, price * quantity, currency, at
    )
    source.orders.append(order)
    source.events.append(
        OrderCreated(
            order_id=order.id,
            user_id=1,
            product_id=product_id,
            quantity=quantity,
            total_cents=order.total_cents,
            currency=currency,
            occurred_at=at,
        )
    )
    for hours, new in zip((7, 20, 33), path, strict=False):
        _move(source, order, new, at + timedelta(hours=hours))


def _move(source: Source, order: SourceOrder, new: Status, at: datetime) -> None:
    old, order.status, order.updated_at = order.status, new, at
    source.events.append(
        OrderStatusChanged(
            order_id=order.id,
            user_id=1,
            order_ref=f"ref-{order.id}",
            old_status=old,
            new_status=new,
            occurred_at=at,
        )
    )


def _learn(source: Source, rng: random.Random, user_id: int, course_id: int) -> None:
    enrolled_at = _instant(rng)
    source.enrollments.append((course_id, user_id, enrolled_at))
    source.events.append(
        EnrollmentCreated(course_id=course_id, user_id=user_id, occurred_at=enrolled_at)
    )
    for lesson in range(rng.randrange(4)):
        done = enrolled_at + timedelta(hours=rng.randrange(1, 30))
        source.completions.append((course_id, user_id, done))
        source.events.append(
            ProgressUpdated(
                course_id=course_id,
                user_id=user_id,
                lesson_id=course_id * 100 + lesson,
                completed=lesson + 1,
                total=5,
                occurred_at=done,
            )
        )


def world(seed: int = 7) -> Source:
    """Users, orders and learners over a few days, with edge cases at midnight."""
    rng = random.Random(seed)
    source = Source()
    for user_id in range(1, 15):
        _register(source, user_id, _instant(rng))
    _register(source, 15, START + timedelta(days=1) - timedelta(microseconds=1))
    _register(source, 16, START + timedelta(days=1))
    for _ in range(30):
        _order(
            source, rng.choice(list(PRICES)), rng.randint(1, 3), _instant(rng), rng.choice(PATHS)
        )
    # Placed a moment before midnight, cancelled the next day.
    _order(source, 3, 1, START + timedelta(hours=23, minutes=59, seconds=59), ("cancelled",))
    for user_id in range(1, 12):
        for course_id in rng.sample([1, 2, 3], rng.randint(1, 2)):
            _learn(source, rng, user_id, course_id)
    source.events.append(
        ProductUpdated(
            product_id=2,
            change="updated",
            changes={"currency": FieldChange(old="EUR", new="USD")},
            occurred_at=EURO_TO_DOLLAR_AT,
        )
    )
    source.events.append(
        CoursePublished(course_id=3, instructor_id=9, job_id="a" * 32, chunks=12, occurred_at=START)
    )
    return source


def deliveries(source: Source, seed: int = 11) -> list[Event]:
    """Every event at least once, some twice or three times, in no particular order; one
    order's cancellation arrives before the order itself."""
    rng = random.Random(seed)
    sent = [e for e in source.events for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    rng.shuffle(sent)
    cancel = next(
        e
        for e in source.events
        if isinstance(e, OrderStatusChanged) and e.new_status == "cancelled"
    )
    created = next(
        e for e in source.events if isinstance(e, OrderCreated) and e.order_id == cancel.order_id
    )
    rest = [e for e in sent if e.event_id not in {cancel.event_id, created.event_id}]
    return [cancel, *rest, created, cancel]


# ----------------------------------------------------------------- expected, from the rows


def report_range(source: Source) -> ReportQuery:
    days = [e.occurred_at.date() for e in source.events]
    return ReportQuery(from_=min(days) - timedelta(days=1), to=max(days) + timedelta(days=1))


def expected_signups(source: Source, query: ReportQuery) -> list[tuple[date, int]]:
    per_day = Counter(at.date() for at in source.users.values())
    return [(day, per_day[day]) for day in query.days()]


def expected_courses(source: Source) -> dict[tuple[date, int], tuple[int, int]]:
    enrolled = Counter((at.date(), course) for course, _user, at in source.enrollments)
    completed = Counter((at.date(), course) for course, _user, at in source.completions)
    return {key: (enrolled[key], completed[key]) for key in enrolled.keys() | completed.keys()}


def expected_orders(source: Source) -> dict[tuple[date, int, str], tuple[int, int, int, int, int]]:
    """(day, product, currency) -> orders, items, revenue, cancellations, cancelled amount."""
    figures: dict[tuple[date, int, str], list[int]] = {}
    for o in source.orders:
        placed = figures.setdefault((o.created_at.date(), o.product_id, o.currency), [0] * 5)
        placed[0], placed[1], placed[2] = (
            placed[0] + 1,
            placed[1] + o.quantity,
            placed[2] + o.total_cents,
        )
    for o in source.orders:
        if o.status == "cancelled":
            assert o.updated_at is not None
            gone = figures.setdefault((o.updated_at.date(), o.product_id, o.currency), [0] * 5)
            gone[3], gone[4] = gone[3] + 1, gone[4] + o.total_cents
    return {key: (a, b, c, d, e) for key, (a, b, c, d, e) in figures.items()}


def as_figures(
    rows: list[OrdersRow],
) -> dict[tuple[date, int, str], tuple[int, int, int, int, int]]:
    return {
        (r.day, r.product_id, r.currency or ""): (
            r.orders,
            r.items,
            r.revenue_cents,
            r.cancellations,
            r.cancelled_cents,
        )
        for r in rows
    }


def check_reports(api: AnalyticsApi, source: Source) -> None:
    """Every report over the whole range, and filtered, against the source rows."""
    query = report_range(source)
    span = {"from_": query.from_, "to": query.to}
    assert [(r.day, r.signups) for r in api.signups(query)] == expected_signups(source, query)
    courses = api.enrollments(EnrollmentsQuery(**span))
    assert {
        (r.day, r.course_id): (r.enrollments, r.lesson_completions) for r in courses
    } == expected_courses(source)
    assert [(r.day, r.course_id) for r in courses] == sorted((r.day, r.course_id) for r in courses)
    assert as_figures(api.orders(OrdersReportQuery(**span))) == expected_orders(source)
    only_two = as_figures(api.orders(OrdersReportQuery(**span, product_id=2)))
    assert only_two == {k: v for k, v in expected_orders(source).items() if k[1] == 2}
    only_one = api.enrollments(EnrollmentsQuery(**span, course_id=1))
    assert {(r.day, r.course_id) for r in only_one} == {
        k for k in expected_courses(source) if k[1] == 1
    }
    types = Counter((e.occurred_at.date(), e.type) for e in source.events)
    assert {(r.day, r.event_type): r.events for r in api.event_counts(query)} == dict(types)


# ----------------------------------------------------------------- the test


def body(event: Event) -> Any:
    """The event as a consumer takes it off the bus."""
    return json.loads(json.dumps(event.to_wire()))


def handler(event: Event) -> str:
    return "on_" + event.type.replace(".", "_")


@pytest.fixture
def analytics(tmp_path: Path) -> Iterator[AnalyticsService]:
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'analytics.db'}", Base.metadata)
    yield wired(AnalyticsService, context=None, db=sessions)
    sessions.kw["bind"].dispose()


def test_the_world_has_the_edge_cases_it_claims() -> None:
    source = world()
    statuses = Counter(o.status for o in source.orders)
    assert statuses["cancelled"] >= 3 and statuses["delivered"] >= 1 and statuses["paid"] >= 1
    assert len({o.currency for o in source.orders if o.product_id == 2}) == 2
    sent = deliveries(source)
    assert len(sent) > len(source.events) and {e.event_id for e in sent} == {
        e.event_id for e in source.events
    }
    assert isinstance(sent[0], OrderStatusChanged)


def test_the_reports_equal_the_source_data(analytics: AnalyticsService) -> None:
    source = world()
    for event in deliveries(source):
        getattr(analytics, handler(event))(body(event))
    api = client(AnalyticsApi, "analytics", LocalTransport(analytics=analytics))
    check_reports(api, source)


def test_a_part_of_the_range_reports_those_days_only(analytics: AnalyticsService) -> None:
    source = world()
    for event in deliveries(source):
        getattr(analytics, handler(event))(body(event))
    api = client(AnalyticsApi, "analytics", LocalTransport(analytics=analytics))
    first, last = START.date() + timedelta(days=1), START.date() + timedelta(days=2)
    rows = api.orders(OrdersReportQuery(from_=first, to=last))
    assert rows and {r.day for r in rows} <= {first, last}
    assert as_figures(rows) == {
        k: v for k, v in expected_orders(source).items() if first <= k[0] <= last
    }
    assert [r.day for r in api.signups(ReportQuery(from_=first, to=last))] == [first, last]
