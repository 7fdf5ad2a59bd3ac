"""The analytics service: entrypoints only.

It counts every domain event once into daily counters (``ledger``; what each figure means is
in ``tally``) and answers the admin reports (``reports``).
"""

from __future__ import annotations

from typing import Any

from contracts.analytics import (
    EnrollmentsQuery,
    EnrollmentsRow,
    EventCountsRow,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
    SignupsRow,
)
from contracts.base import parse_event
from contracts.catalog import ProductUpdated
from contracts.courses import CoursePublished, EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from mesh.events import handle_event
from mesh.providers import CorrelationContext
from mesh.rpc import rpc
from mesh.service_metrics import ServiceMetrics
from mesh.sql import Database
from mesh.typed import expose
from services.analytics import ledger, reports


class AnalyticsService:
    """Satisfies ``contracts.analytics.AnalyticsApi``; handles every domain event."""

    name = "analytics"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    db = Database("analytics")

    @rpc
    def ping(self) -> str:
        return self.name

    @handle_event(UserRegistered)
    def on_user_registered(self, body: Any) -> None:
        ledger.count(self.db, parse_event(UserRegistered, body))

    @handle_event(ProductUpdated)
    def on_product_updated(self, body: Any) -> None:
        ledger.count(self.db, parse_event(ProductUpdated, body))

    @handle_event(OrderCreated)
    def on_order_created(self, body: Any) -> None:
        ledger.count(self.db, parse_event(OrderCreated, body))

    @handle_event(OrderStatusChanged)
    def on_order_status_changed(self, body: Any) -> None:
        ledger.count(self.db, parse_event(OrderStatusChanged, body))

    @handle_event(CoursePublished)
    def on_course_published(self, body: Any) -> None:
        ledger.count(self.db, parse_event(CoursePublished, body))

    @handle_event(EnrollmentCreated)
    def on_enrollment_created(self, body: Any) -> None:
        ledger.count(self.db, parse_event(EnrollmentCreated, body))

    @handle_event(ProgressUpdated)
    def on_progress_updated(self, body: Any) -> None:
        ledger.count(self.db, parse_event(ProgressUpdated, body))

    @expose
    def signups(self, query: ReportQuery) -> list[SignupsRow]:
        return reports.signups(self.db, query)

    @expose
    def enrollments(self, query: EnrollmentsQuery) -> list[EnrollmentsRow]:
        return reports.enrollments(self.db, query)

    @expose
    def orders(self, query: OrdersReportQuery) -> list[OrdersRow]:
        return reports.orders(self.db, query)

    @expose
    def event_counts(self, query: ReportQuery) -> list[EventCountsRow]:
        return reports.event_counts(self.db, query)
