"""The analytics service class: report queries checked at the edge, every event handled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from nameko.events import EventHandler
from pydantic import ValidationError

from contracts.analytics import (
    MAX_DAYS,
    AnalyticsApi,
    EnrollmentsQuery,
    OrdersReportQuery,
    ReportQuery,
)
from contracts.errors import ContractViolation, InvalidInput
from contracts.registry import EVENTS
from mesh.events import ReliableEventHandler
from mesh.sql import make_sessionmaker
from mesh.typed import client, shape
from services.analytics.models import Base
from services.analytics.service import AnalyticsService
from tests.unit.service_fakes import LocalTransport, wired

SPAN = {"from": "2024-03-01", "to": "2024-03-03"}


@pytest.fixture
def transport(tmp_path: Path) -> Iterator[LocalTransport]:
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'analytics.db'}", Base.metadata)
    yield LocalTransport(analytics=wired(AnalyticsService, context=None, db=sessions))
    sessions.kw["bind"].dispose()


def invalid(transport: LocalTransport, method: str, query: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        transport.call("analytics", method, query)
    return [(d["field"], d["message"]) for d in caught.value.details or []]


def test_ping(transport: LocalTransport) -> None:
    assert transport.call("analytics", "ping") == "analytics"


def test_from_is_from_on_the_wire_and_from_in_python() -> None:
    query = EnrollmentsQuery(from_=date(2024, 3, 1), to=date(2024, 3, 3), course_id=4)
    wire = shape(AnalyticsApi.enrollments).dump_args((query,), {})
    assert wire == [{**SPAN, "course_id": 4}]
    assert EnrollmentsQuery.model_validate(wire[0]) == query
    assert ReportQuery.model_json_schema()["required"] == ["from", "to"]


def test_an_empty_range_is_answered(transport: LocalTransport) -> None:
    assert transport.call("analytics", "signups", SPAN) == [
        {"day": "2024-03-01", "signups": 0},
        {"day": "2024-03-02", "signups": 0},
        {"day": "2024-03-03", "signups": 0},
    ]
    for method in ("enrollments", "orders", "event_counts"):
        assert transport.call("analytics", method, SPAN) == []


def test_the_typed_client_answers_rows(transport: LocalTransport) -> None:
    api = client(AnalyticsApi, "analytics", transport)
    query = OrdersReportQuery(from_=date(2024, 3, 1), to=date(2024, 3, 1), product_id=2)
    assert api.orders(query) == []
    assert [
        r.day for r in api.signups(ReportQuery(from_=date(2024, 3, 1), to=date(2024, 3, 1)))
    ] == [date(2024, 3, 1)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2024-03-01"}, "query.to"),
        ({**SPAN, "from": "01/03/2024"}, "query.from"),
        ({**SPAN, "from": "2024-3-1"}, "query.from"),
        ({**SPAN, "from": "2024-03-01T00:00:00"}, "query.from"),
        ({**SPAN, "from": 1709251200}, "query.from"),
        ({**SPAN, "to": "2023-02-29"}, "query.to"),
        ({**SPAN, "to": None}, "query.to"),
        ({**SPAN, "extra": 1}, "query.extra"),
        ("2024-03-01", "query"),
    ],
)
def test_a_malformed_query_is_invalid_input(
    transport: LocalTransport, query: Any, field: str
) -> None:
    assert field in [f for f, _ in invalid(transport, "signups", query)]


def test_from_after_to_is_invalid_input(transport: LocalTransport) -> None:
    query = {"from": "2024-03-02", "to": "2024-03-01"}
    assert invalid(transport, "orders", query) == [
        ("query", "Value error, from must not be after to")
    ]


def test_a_range_of_more_than_a_year_is_invalid_input(transport: LocalTransport) -> None:
    longest = {"from": "2024-01-01", "to": "2024-12-31"}  # 366 days, a leap year
    assert len(transport.call("analytics", "signups", longest)) == MAX_DAYS
    too_long = {"from": "2023-12-31", "to": "2024-12-31"}
    assert invalid(transport, "enrollments", too_long) == [
        ("query", f"Value error, the range may span at most {MAX_DAYS} days")
    ]


@pytest.mark.parametrize("bad", [{"course_id": 0}, {"course_id": "4"}, {"course_id": True}])
def test_the_course_filter_is_an_id(transport: LocalTransport, bad: dict[str, Any]) -> None:
    assert [f for f, _ in invalid(transport, "enrollments", {**SPAN, **bad})] == ["query.course_id"]


def test_the_query_model_refuses_a_bad_range_in_python_too() -> None:
    with pytest.raises(ValidationError, match="from must not be after to"):
        ReportQuery(from_=date(2024, 3, 2), to=date(2024, 3, 1))


def test_every_event_has_its_reliable_handler() -> None:
    handlers = {
        entrypoint.event_type: (entrypoint.source_service, name)
        for name in dir(AnalyticsService)
        for entrypoint in getattr(getattr(AnalyticsService, name), "nameko_entrypoints", ())
        if isinstance(entrypoint, EventHandler)
    }
    assert handlers == {
        event.type: (event.source, "on_" + event.type.replace(".", "_")) for event in EVENTS
    }
    assert all(
        isinstance(entrypoint, ReliableEventHandler)
        for name in handlers.values()
        for entrypoint in getattr(AnalyticsService, name[1]).nameko_entrypoints
        if isinstance(entrypoint, EventHandler)
    )


def test_a_broken_event_is_a_contract_violation(tmp_path: Path) -> None:
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'analytics.db'}", Base.metadata)
    service = wired(AnalyticsService, context=None, db=sessions)
    with pytest.raises(ContractViolation):
        service.on_order_created({"type": "order.created", "order_id": "seven"})
    sessions.kw["bind"].dispose()
