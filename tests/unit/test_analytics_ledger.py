"""Counting events into the daily counters: once per event, on its UTC day (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.analytics import EnrollmentsQuery, OrdersReportQuery, ReportQuery
from contracts.base import Event
from contracts.courses import CoursePublished, EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from mesh.sql import make_sessionmaker
from services.analytics import ledger, reports, tally
from services.analytics.models import Base, DailyProduct, OrderFact, ProcessedEvent

NOON = datetime(2024, 3, 5, 12, tzinfo=UTC)
DAY = NOON.date()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker]:
    factory = make_sessionmaker(f"sqlite:///{tmp_path / 'analytics.db'}", Base.metadata)
    yield factory
    factory.kw["bind"].dispose()


def snapshot(sessions: sessionmaker) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every analytics table."""
    with sessions() as session:
        return {
            table.name: sorted(tuple(row) for row in session.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


def placed(order_id: int, at: datetime = NOON, **fields: Any) -> OrderCreated:
    values = {"user_id": 1, "product_id": 7, "quantity": 2, "total_cents": 1800, "currency": "EUR"}
    return OrderCreated(order_id=order_id, occurred_at=at, **{**values, **fields})


def moved(order_id: int, new: str = "cancelled", at: datetime = NOON) -> OrderStatusChanged:
    old = "paid" if new in {"shipped", "cancelled"} else "pending"
    return OrderStatusChanged.model_validate(
        {
            "order_id": order_id,
            "user_id": 1,
            "order_ref": "r",
            "old_status": old,
            "new_status": new,
            "occurred_at": at,
        }
    )


def day(on: date = DAY) -> ReportQuery:
    return ReportQuery(from_=on, to=on)


def orders(sessions: sessionmaker, on: date = DAY) -> list[tuple[Any, ...]]:
    rows = reports.orders(sessions, OrdersReportQuery(from_=on, to=on))
    return [
        (
            r.product_id,
            r.currency,
            r.orders,
            r.items,
            r.revenue_cents,
            r.cancellations,
            r.cancelled_cents,
        )
        for r in rows
    ]


def test_the_same_event_twice_is_counted_once(sessions: sessionmaker) -> None:
    event = UserRegistered(user_id=3, occurred_at=NOON)
    assert ledger.count(sessions, event) is True
    before = snapshot(sessions)
    assert ledger.count(sessions, event) is False
    assert ledger.count(sessions, UserRegistered.model_validate(event.to_wire())) is False
    assert snapshot(sessions) == before
    assert [r.signups for r in reports.signups(sessions, day())] == [1]


def test_two_events_alike_but_for_their_id_count_twice(sessions: sessionmaker) -> None:
    for _ in range(2):
        ledger.count(sessions, EnrollmentCreated(course_id=4, user_id=3, occurred_at=NOON))
    rows = reports.enrollments(sessions, EnrollmentsQuery(from_=DAY, to=DAY))
    assert [(r.course_id, r.enrollments, r.lesson_completions) for r in rows] == [(4, 2, 0)]


def test_each_event_lands_in_its_counters(sessions: sessionmaker) -> None:
    events: list[Event] = [
        UserRegistered(user_id=1, occurred_at=NOON),
        EnrollmentCreated(course_id=4, user_id=1, occurred_at=NOON),
        ProgressUpdated(
            course_id=4, user_id=1, lesson_id=9, completed=1, total=3, occurred_at=NOON
        ),
        ProgressUpdated(
            course_id=5, user_id=1, lesson_id=8, completed=1, total=3, occurred_at=NOON
        ),
        CoursePublished(course_id=4, instructor_id=2, job_id="f" * 32, chunks=3, occurred_at=NOON),
        placed(1),
        moved(1, "paid"),
    ]
    for event in events:
        assert ledger.count(sessions, event) is True
    courses = reports.enrollments(sessions, EnrollmentsQuery(from_=DAY, to=DAY))
    assert [(r.course_id, r.enrollments, r.lesson_completions) for r in courses] == [
        (4, 1, 1),
        (5, 0, 1),
    ]
    assert orders(sessions) == [(7, "EUR", 1, 2, 1800, 0, 0)]
    assert {(r.event_type, r.events) for r in reports.event_counts(sessions, day())} == {
        ("user.registered", 1),
        ("enrollment.created", 1),
        ("progress.updated", 2),
        ("course.published", 1),
        ("order.created", 1),
        ("order.status_changed", 1),
    }


def test_the_day_is_the_utc_day_of_occurred_at(sessions: sessionmaker) -> None:
    # 01:30 in UTC+2 on 1 March 2024 is 23:30 UTC on the leap day.
    local = datetime(2024, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    wire = {"user_id": 1, "occurred_at": local.isoformat()}
    ledger.count(sessions, UserRegistered.model_validate(wire))
    query = ReportQuery(from_=date(2024, 2, 29), to=date(2024, 3, 1))
    assert [(r.day, r.signups) for r in reports.signups(sessions, query)] == [
        (date(2024, 2, 29), 1),
        (date(2024, 3, 1), 0),
    ]


def test_a_cancellation_counts_on_its_day_with_the_orders_amount(sessions: sessionmaker) -> None:
    ledger.count(sessions, placed(1))
    ledger.count(sessions, moved(1, at=NOON + timedelta(days=1)))
    assert orders(sessions) == [(7, "EUR", 1, 2, 1800, 0, 0)]
    assert orders(sessions, DAY + timedelta(days=1)) == [(7, "EUR", 0, 0, 0, 1, 1800)]


def test_a_cancellation_before_its_order_waits_for_it(sessions: sessionmaker) -> None:
    ledger.count(sessions, moved(1, at=NOON + timedelta(days=1)))
    assert orders(sessions, DAY + timedelta(days=1)) == []
    ledger.count(sessions, placed(1))
    assert orders(sessions) == [(7, "EUR", 1, 2, 1800, 0, 0)]
    assert orders(sessions, DAY + timedelta(days=1)) == [(7, "EUR", 0, 0, 0, 1, 1800)]


def test_an_order_is_cancelled_once_whatever_the_events_say(sessions: sessionmaker) -> None:
    ledger.count(sessions, placed(1))
    ledger.count(sessions, moved(1))
    ledger.count(sessions, moved(1))  # another event id: not another cancellation
    ledger.count(sessions, placed(1))  # nor another order
    assert orders(sessions) == [(7, "EUR", 1, 2, 1800, 1, 1800)]


def test_an_order_without_an_amount_counts_under_no_currency(sessions: sessionmaker) -> None:
    ledger.count(sessions, placed(1, total_cents=None, currency=None))
    ledger.count(sessions, placed(2))
    ledger.count(sessions, moved(1))
    assert orders(sessions) == [(7, None, 1, 2, 0, 1, 0), (7, "EUR", 1, 2, 1800, 0, 0)]


def test_other_moves_count_as_events_only(sessions: sessionmaker) -> None:
    ledger.count(sessions, placed(1))
    for new in ("paid", "shipped", "delivered"):
        ledger.count(sessions, moved(1, new))
    assert orders(sessions) == [(7, "EUR", 1, 2, 1800, 0, 0)]
    with sessions() as session:
        fact = session.get(OrderFact, 1)
        assert fact is not None and fact.cancelled_on is None


def test_the_mark_and_the_counters_commit_together(
    sessions: sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, event: Any) -> None:
        tally.signup(session, event)
        raise RuntimeError("the database went away")

    monkeypatch.setitem(tally.TALLIES, UserRegistered.type, broken)
    event = UserRegistered(user_id=1, occurred_at=NOON)
    with pytest.raises(RuntimeError):
        ledger.count(sessions, event)
    assert all(rows == [] for rows in snapshot(sessions).values())
    monkeypatch.setitem(tally.TALLIES, UserRegistered.type, tally.signup)
    assert ledger.count(sessions, event) is True  # the redelivery counts it, once
    assert [r.signups for r in reports.signups(sessions, day())] == [1]


def test_a_transient_conflict_is_tried_again(
    sessions: sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = iter([OperationalError("UPDATE", {}, Exception("deadlock"))])

    def flaky(session: Session, event: Any) -> None:
        tally.enrollment(session, event)
        if (failure := next(failures, None)) is not None:
            raise failure

    monkeypatch.setitem(tally.TALLIES, EnrollmentCreated.type, flaky)
    assert ledger.count(sessions, EnrollmentCreated(course_id=1, user_id=1, occurred_at=NOON))
    rows = reports.enrollments(sessions, EnrollmentsQuery(from_=DAY, to=DAY))
    assert [r.enrollments for r in rows] == [1]
    with sessions() as session:
        assert len(session.scalars(select(ProcessedEvent)).all()) == 1


def test_conflicts_that_last_reach_the_reliable_handler(
    sessions: sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(session: Session, event: Any) -> None:
        raise OperationalError("UPDATE", {}, Exception("deadlock"))

    monkeypatch.setitem(tally.TALLIES, UserRegistered.type, stuck)
    with pytest.raises(OperationalError):
        ledger.count(sessions, UserRegistered(user_id=1, occurred_at=NOON))
    with sessions() as session:
        assert session.scalars(select(DailyProduct)).all() == []
        assert session.scalars(select(ProcessedEvent)).all() == []
