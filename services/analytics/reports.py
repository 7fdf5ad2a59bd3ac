"""The admin reports: the daily counters of a range of days, as contract rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from contracts.analytics import (
    EnrollmentsQuery,
    EnrollmentsRow,
    EventCountsRow,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
    SignupsRow,
)
from services.analytics.models import UNPRICED, DailyCourse, DailyEvents, DailyProduct, DailySignups


def signups(sessions: sessionmaker, query: ReportQuery) -> list[SignupsRow]:
    """Every day of the range, zero where nobody registered."""
    with sessions() as session:
        rows = session.execute(
            select(DailySignups.day, DailySignups.signups).where(
                DailySignups.day.between(query.from_, query.to)
            )
        ).all()
    counted = {day: signups for day, signups in rows}
    return [SignupsRow(day=day, signups=counted.get(day, 0)) for day in query.days()]


def enrollments(sessions: sessionmaker, query: EnrollmentsQuery) -> list[EnrollmentsRow]:
    statement = (
        select(DailyCourse)
        .where(DailyCourse.day.between(query.from_, query.to))
        .order_by(DailyCourse.day, DailyCourse.course_id)
    )
    if query.course_id is not None:
        statement = statement.where(DailyCourse.course_id == query.course_id)
    with sessions() as session:
        rows = session.scalars(statement).all()
    return [
        EnrollmentsRow(
            day=row.day,
            course_id=row.course_id,
            enrollments=row.enrollments,
            lesson_completions=row.lesson_completions,
        )
        for row in rows
    ]


def _orders_row(row: DailyProduct) -> OrdersRow:
    return OrdersRow(
        day=row.day,
        product_id=row.product_id,
        currency=None if row.currency == UNPRICED else row.currency,
        orders=row.orders,
        items=row.items,
        revenue_cents=row.revenue_cents,
        cancellations=row.cancellations,
        cancelled_cents=row.cancelled_cents,
    )


def orders(sessions: sessionmaker, query: OrdersReportQuery) -> list[OrdersRow]:
    statement = (
        select(DailyProduct)
        .where(DailyProduct.day.between(query.from_, query.to))
        .order_by(DailyProduct.day, DailyProduct.product_id, DailyProduct.currency)
    )
    if query.product_id is not None:
        statement = statement.where(DailyProduct.product_id == query.product_id)
    with sessions() as session:
        rows = session.scalars(statement).all()
    return [_orders_row(row) for row in rows]


def event_counts(sessions: sessionmaker, query: ReportQuery) -> list[EventCountsRow]:
    statement = (
        select(DailyEvents)
        .where(DailyEvents.day.between(query.from_, query.to))
        .order_by(DailyEvents.day, DailyEvents.event_type)
    )
    with sessions() as session:
        rows = session.scalars(statement).all()
    return [EventCountsRow(day=r.day, event_type=r.event_type, events=r.events) for r in rows]
