"""The analytics service's own tables: the events it counted, its daily counters, and what
it remembers of each order.

Ids come from other services, so there are no foreign keys; they are BIGINT, wider than an ``Id``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Date, DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UNPRICED = ""
"""The stored currency of orders whose event carried no amount (``None`` in the reports)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def counter() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, default=0)


def an_id(*, primary_key: bool = False, nullable: bool = False) -> Mapped[int]:
    return mapped_column(
        BigInteger, primary_key=primary_key, autoincrement=False, nullable=nullable
    )


class Base(DeclarativeBase):
    pass


class ProcessedEvent(Base):
    """One row per event counted; its primary key is the guard against counting one twice."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )


class DailyEvents(Base):
    """Events of each type per day."""

    __tablename__ = "daily_events"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    events: Mapped[int] = counter()


class DailySignups(Base):
    __tablename__ = "daily_signups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    signups: Mapped[int] = counter()


class DailyCourse(Base):
    """One course's enrolments and lesson completions on one day."""

    __tablename__ = "daily_courses"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    course_id: Mapped[int] = an_id(primary_key=True)
    enrollments: Mapped[int] = counter()
    lesson_completions: Mapped[int] = counter()


class DailyProduct(Base):
    """One product's orders on one day in one currency (:data:`UNPRICED` for no amount)."""

    __tablename__ = "daily_products"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    product_id: Mapped[int] = an_id(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = counter()
    items: Mapped[int] = counter()
    revenue_cents: Mapped[int] = counter()
    cancellations: Mapped[int] = counter()
    cancelled_cents: Mapped[int] = counter()


class OrderFact(Base):
    """What analytics knows of one order: enough to count its cancellation under its product
    and amount, whichever of order.created and its cancellation arrives first.

    ``placed_on`` is None until order.created is counted; ``cancelled_on`` until the order's
    cancellation is (``product_id`` and the amount are unknown until the former).
    """

    __tablename__ = "order_facts"

    order_id: Mapped[int] = an_id(primary_key=True)
    product_id: Mapped[int | None] = an_id(nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3))
    total_cents: Mapped[int | None] = mapped_column(BigInteger)
    placed_on: Mapped[date | None] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date)
