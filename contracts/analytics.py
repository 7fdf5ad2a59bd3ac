"""Analytics: the admin reports' queries and rows, and the analytics RPC surface.

Every figure is per UTC day (of the event's ``occurred_at``). A report covers the days from
``from`` to ``to``, both included: ISO ``YYYY-MM-DD`` dates, ``from <= to``, at most
:data:`MAX_DAYS` days. What each figure means is written in ``services/analytics/tally.py``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Protocol

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from contracts.base import Contract, Id

MAX_DAYS = 366
"""The longest range a report covers, in days (both ends included)."""

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Only a date or a ``YYYY-MM-DD`` string: no timestamps, datetimes or other spellings."""
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise ValueError("must be a date, YYYY-MM-DD")
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class ReportQuery(Contract):
    """A range of days. ``from`` is a Python keyword: the field is ``from_``, ``from`` on the
    wire (both are read; ``from`` is written)."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    from_: IsoDate = Field(alias="from", description="First day, UTC (YYYY-MM-DD).")
    to: IsoDate = Field(description="Last day, UTC (YYYY-MM-DD), included.")

    @model_validator(mode="after")
    def _a_bounded_range(self) -> ReportQuery:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        if (self.to - self.from_).days + 1 > MAX_DAYS:
            raise ValueError(f"the range may span at most {MAX_DAYS} days")
        return self

    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [date.fromordinal(n) for n in range(self.from_.toordinal(), self.to.toordinal() + 1)]


class EnrollmentsQuery(ReportQuery):
    course_id: Id | None = Field(None, description="One course; none means every course.")


class OrdersReportQuery(ReportQuery):
    product_id: Id | None = Field(None, description="One product; none means every product.")


class SignupsRow(Contract):
    day: date
    signups: int


class EnrollmentsRow(Contract):
    day: date
    course_id: int
    enrollments: int
    lesson_completions: int


class OrdersRow(Contract):
    """One product's orders on one day, in one currency (``None``: events without an amount)."""

    day: date
    product_id: int
    currency: str | None
    orders: int
    items: int
    revenue_cents: int
    cancellations: int
    cancelled_cents: int


class EventCountsRow(Contract):
    day: date
    event_type: str
    events: int


class AnalyticsApi(Protocol):
    """The analytics service's RPC surface (service name ``analytics``); read-only reports
    for administrators (the caller checks for one)."""

    def signups(self, query: ReportQuery) -> list[SignupsRow]:
        """Users registered: one row per day of the range, zero where nobody registered."""
        ...

    def enrollments(self, query: EnrollmentsQuery) -> list[EnrollmentsRow]:
        """Enrolments and lesson completions per day and course, for the days and courses
        with any; by day, then course."""
        ...

    def orders(self, query: OrdersReportQuery) -> list[OrdersRow]:
        """Orders placed and cancelled per day, product and currency, where any; by day,
        then product, then currency."""
        ...

    def event_counts(self, query: ReportQuery) -> list[EventCountsRow]:
        """Every event counted, per day and type, where any; by day, then type."""
        ...
