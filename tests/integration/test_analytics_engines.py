"""Analytics on SQLite, PostgreSQL and MariaDB: duplicates and concurrent deliveries count once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from contracts.analytics import (
    AnalyticsApi,
    EnrollmentsQuery,
    EnrollmentsRow,
    EventCountsRow,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
    SignupsRow,
)
from contracts.base import Event
from contracts.courses import EnrollmentCreated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from services.analytics import ledger, reports
from services.analytics.models import Base, ProcessedEvent
from tests.integration.engines import SERVERS, fresh_schema
from tests.integration.test_catalog_engines import at_once
from tests.unit.test_analytics_figures import check_reports, deliveries, world

CALLERS = 8
NOON = datetime(2024, 3, 5, 12, tzinfo=UTC)
DAY = NOON.date()


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    with fresh_schema(request.param, Base.metadata, tmp_path) as factory:
        yield factory


class Reports(AnalyticsApi):
    """The report logic over one database, as the service answers it."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def signups(self, query: ReportQuery) -> list[SignupsRow]:
        return reports.signups(self.sessions, query)

    def enrollments(self, query: EnrollmentsQuery) -> list[EnrollmentsRow]:
        return reports.enrollments(self.sessions, query)

    def orders(self, query: OrdersReportQuery) -> list[OrdersRow]:
        return reports.orders(self.sessions, query)

    def event_counts(self, query: ReportQuery) -> list[EventCountsRow]:
        return reports.event_counts(self.sessions, query)


def processed(sessions: sessionmaker) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)


def count_at_once(sessions: sessionmaker, events: list[Event]) -> list[Any]:
    """Each event counted on its own thread, all released together: results or exceptions."""
    return at_once(len(events), lambda i: ledger.count(sessions, events[i]))


def signups_on_day(sessions: sessionmaker) -> int:
    return reports.signups(sessions, ReportQuery(from_=DAY, to=DAY))[0].signups


def test_the_same_event_twice_is_counted_once(sessions: sessionmaker) -> None:
    event = UserRegistered(user_id=1, occurred_at=NOON)
    assert [ledger.count(sessions, event) for _ in range(2)] == [True, False]
    assert (signups_on_day(sessions), processed(sessions)) == (1, 1)


def test_the_same_event_at_once_is_counted_once(sessions: sessionmaker) -> None:
    for user_id in range(1, 4):
        event = UserRegistered(user_id=user_id, occurred_at=NOON)
        outcomes = count_at_once(sessions, [event] * CALLERS)
        assert sorted(outcomes, key=str) == [False] * (CALLERS - 1) + [True], outcomes
    assert (signups_on_day(sessions), processed(sessions)) == (3, 3)


def test_different_events_at_once_all_count(sessions: sessionmaker) -> None:
    events = [
        EnrollmentCreated(course_id=4, user_id=i + 1, occurred_at=NOON) for i in range(CALLERS)
    ]
    assert count_at_once(sessions, list(events)) == [True] * CALLERS
    rows = reports.enrollments(sessions, EnrollmentsQuery(from_=DAY, to=DAY))
    assert [(r.course_id, r.enrollments) for r in rows] == [(4, CALLERS)]


def test_an_order_and_its_cancellation_at_once_count_once_each(sessions: sessionmaker) -> None:
    pairs: list[tuple[Event, Event]] = [
        (
            OrderCreated(
                order_id=n,
                user_id=1,
                product_id=7,
                quantity=1,
                total_cents=500,
                currency="EUR",
                occurred_at=NOON,
            ),
            OrderStatusChanged(
                order_id=n,
                user_id=1,
                order_ref="r",
                old_status="pending",
                new_status="cancelled",
                occurred_at=NOON,
            ),
        )
        for n in range(1, 6)
    ]
    for pair in pairs:
        assert count_at_once(sessions, list(pair)) == [True, True]
    rows = reports.orders(sessions, OrdersReportQuery(from_=DAY, to=DAY))
    assert [(r.orders, r.revenue_cents, r.cancellations, r.cancelled_cents) for r in rows] == [
        (5, 2500, 5, 2500)
    ]


def test_the_reports_equal_the_source_under_concurrent_duplicate_delivery(
    sessions: sessionmaker,
) -> None:
    source = world()
    sent = deliveries(source)
    # Every event twice more, on four workers at once, in another order.
    extra = random.Random(3).sample(source.events, len(source.events)) * 2
    queue = sent + extra
    outcomes = at_once(4, lambda i: [ledger.count(sessions, e) for e in queue[i::4]])
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sum(counted for worker in outcomes for counted in worker) == len(source.events)
    assert processed(sessions) == len(source.events)
    check_reports(Reports(sessions), source)
    # A late redelivery changes nothing.
    again = [ledger.count(sessions, e) for e in source.events[:10]]
    assert again == [False] * 10
    assert processed(sessions) == len(source.events)
