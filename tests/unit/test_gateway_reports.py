"""/api/reports through the gateway on FakeAnalytics: administrators only, the rows as JSON or
(``Accept: text/csv``) as a CSV file, the range checked, the filters passed on.

The fake is fed domain events as the real service is (each counted once, on its UTC day), so
the rows below are what the real tally makes of them (tests/unit/test_service_contracts.py holds
the fake to the real service on the same events).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import BaseModel

from contracts.analytics import MAX_DAYS, EnrollmentsRow, OrdersRow, SignupsRow
from contracts.base import Event
from contracts.courses import EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from gateway.openapi import build_document
from tests.unit.gateway_helpers import RecordingTransport, assert_error, bearer
from tests.unit.service_fakes import FakeAnalytics

ROWS: dict[str, type[BaseModel]] = {
    "signups": SignupsRow,
    "enrollments": EnrollmentsRow,
    "orders": OrdersRow,
}
REPORTS = tuple(ROWS)
SPAN = "from=2024-03-01&to=2024-03-03"
DAY1 = datetime(2024, 3, 1, 9, tzinfo=UTC)
DAY2 = datetime(2024, 3, 2, 23, 59, 59, tzinfo=UTC)
LATER = datetime(2024, 3, 9, tzinfo=UTC)  # outside SPAN


def url(report: str, query: str = SPAN) -> str:
    return f"/api/reports/{report}?{query}"


def placed(order_id: int, product_id: int, at: datetime, **fields: Any) -> OrderCreated:
    values = {"quantity": 2, "total_cents": 5000, "currency": "GBP", **fields}
    return OrderCreated(
        order_id=order_id, user_id=1, product_id=product_id, occurred_at=at, **values
    )


def cancelled(order_id: int, at: datetime) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=order_id,
        user_id=1,
        order_ref=f"ref-{order_id}",
        old_status="pending",
        new_status="cancelled",
        occurred_at=at,
    )


EVENTS: list[Event] = [
    UserRegistered(user_id=1, occurred_at=DAY1),
    UserRegistered(user_id=2, occurred_at=DAY1),
    UserRegistered(user_id=3, occurred_at=DAY2),
    UserRegistered(user_id=4, occurred_at=LATER),
    EnrollmentCreated(course_id=7, user_id=1, occurred_at=DAY1),
    EnrollmentCreated(course_id=8, user_id=1, occurred_at=DAY1),
    EnrollmentCreated(course_id=7, user_id=2, occurred_at=DAY2),
    ProgressUpdated(course_id=7, user_id=1, lesson_id=70, completed=1, total=3, occurred_at=DAY2),
    placed(1, product_id=5, at=DAY1),
    placed(2, product_id=5, at=DAY1, quantity=1, total_cents=2500),
    placed(3, product_id=6, at=DAY1, total_cents=None, currency=None),  # an older event
    placed(4, product_id=6, at=DAY2, quantity=1, total_cents=990, currency="EUR"),
    cancelled(1, DAY2),
]


@pytest.fixture
def analytics(fake_analytics: FakeAnalytics) -> FakeAnalytics:
    for event in EVENTS:
        assert fake_analytics.count(event)
    return fake_analytics


@pytest.fixture
def admin(login: Callable[..., dict[str, Any]]) -> dict[str, str]:
    return bearer(login("root@example.com", admin=True)["access_token"])


@pytest.fixture
def student(login: Callable[..., dict[str, Any]]) -> dict[str, str]:
    return bearer(login("sam@example.com")["access_token"])


def rows(client: FlaskClient, headers: dict[str, str], report: str, query: str = SPAN) -> Any:
    response = client.get(url(report, query), headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"items"}
    return body["items"]


# ----------------------------------------------------------------- who may read them


@pytest.mark.parametrize("report", REPORTS)
def test_reports_are_for_administrators_only(
    client: FlaskClient,
    student: dict[str, str],
    transport: RecordingTransport,
    report: str,
) -> None:
    assert_error(client.get(url(report)), 401, "unauthorized")
    assert_error(client.get(url(report), headers=student), 403, "forbidden")
    assert_error(client.get(url(report), headers=bearer("not-a-token")), 401, "unauthorized")
    assert transport.methods("analytics") == []


# ----------------------------------------------------------------- JSON


def test_signups_are_one_row_per_day_of_the_range(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    assert rows(client, admin, "signups") == [
        {"day": "2024-03-01", "signups": 2},
        {"day": "2024-03-02", "signups": 1},
        {"day": "2024-03-03", "signups": 0},
    ]


def test_enrollments_are_per_day_and_course_where_any(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    assert rows(client, admin, "enrollments") == [
        {"day": "2024-03-01", "course_id": 7, "enrollments": 1, "lesson_completions": 0},
        {"day": "2024-03-01", "course_id": 8, "enrollments": 1, "lesson_completions": 0},
        {"day": "2024-03-02", "course_id": 7, "enrollments": 1, "lesson_completions": 1},
    ]


def test_orders_are_per_day_product_and_currency_with_cancellations(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    def row(day: str, product_id: int, currency: str | None, *figures: int) -> dict[str, Any]:
        names = ("orders", "items", "revenue_cents", "cancellations", "cancelled_cents")
        return {
            "day": day,
            "product_id": product_id,
            "currency": currency,
            **dict(zip(names, figures, strict=True)),
        }

    assert rows(client, admin, "orders") == [
        row("2024-03-01", 5, "GBP", 2, 3, 7500, 0, 0),
        row("2024-03-01", 6, None, 1, 2, 0, 0, 0),  # an event without its amount
        row("2024-03-02", 5, "GBP", 0, 0, 0, 1, 5000),  # the cancellation, on its own day
        row("2024-03-02", 6, "EUR", 1, 1, 990, 0, 0),
    ]


def test_an_empty_range_has_zero_signups_and_no_other_rows(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    query = "from=2023-01-01&to=2023-01-02"
    assert [r["signups"] for r in rows(client, admin, "signups", query)] == [0, 0]
    assert rows(client, admin, "enrollments", query) == []
    assert rows(client, admin, "orders", query) == []


def test_the_longest_range_is_answered(client: FlaskClient, admin: dict[str, str]) -> None:
    longest = rows(client, admin, "signups", "from=2024-01-01&to=2024-12-31")  # a leap year
    assert len(longest) == MAX_DAYS
    assert (longest[0]["day"], longest[-1]["day"]) == ("2024-01-01", "2024-12-31")


# ----------------------------------------------------------------- filters


def test_the_course_filter(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    found = rows(client, admin, "enrollments", f"{SPAN}&course_id=7")
    assert [(r["day"], r["course_id"]) for r in found] == [("2024-03-01", 7), ("2024-03-02", 7)]
    assert rows(client, admin, "enrollments", f"{SPAN}&course_id=999") == []


def test_the_product_filter(
    client: FlaskClient,
    admin: dict[str, str],
    analytics: FakeAnalytics,
    transport: RecordingTransport,
) -> None:
    found = rows(client, admin, "orders", f"{SPAN}&product_id=6")
    assert [(r["day"], r["currency"]) for r in found] == [
        ("2024-03-01", None),
        ("2024-03-02", "EUR"),
    ]
    (call,) = [c for c in transport.calls if c.method == "orders"]
    assert call.args == ({"from": "2024-03-01", "to": "2024-03-03", "product_id": 6},)


def test_a_filter_another_report_does_not_know_is_ignored(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    """As every query string of the gateway: unknown parameters are not read."""
    assert rows(client, admin, "signups", f"{SPAN}&course_id=7") == rows(client, admin, "signups")


# ----------------------------------------------------------------- CSV


def parsed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def as_text(row: dict[str, Any]) -> dict[str, str]:
    """A JSON row as the csv module reads it back: every value a string, null an empty one."""
    return {name: "" if value is None else str(value) for name, value in row.items()}


@pytest.mark.parametrize("report", REPORTS)
def test_the_same_rows_as_csv(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics, report: str
) -> None:
    expected = rows(client, admin, report)
    response = client.get(url(report), headers={**admin, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{report}.csv"'
    text = response.get_data(as_text=True)
    lines = text.split("\r\n")
    assert lines[-1] == ""  # every line ends with CRLF
    header, body = lines[0], lines[1:-1]
    assert header.split(",") == list(ROWS[report].model_fields)  # the rows' own order
    assert set(header.split(",")) == set(expected[0])
    assert len(body) == len(expected)
    assert parsed(text) == [as_text(row) for row in expected]


def test_an_empty_report_as_csv_is_its_header(
    client: FlaskClient, admin: dict[str, str], analytics: FakeAnalytics
) -> None:
    response = client.get(
        url("orders", "from=2023-01-01&to=2023-01-02"), headers={**admin, "Accept": "text/csv"}
    )
    assert response.get_data(as_text=True) == (
        "day,product_id,currency,orders,items,revenue_cents,cancellations,cancelled_cents\r\n"
    )


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/csv", "text/csv"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        ("text/*", "text/csv"),
    ],
)
def test_accept_picks_json_or_csv(
    client: FlaskClient, admin: dict[str, str], accept: str, mimetype: str
) -> None:
    response = client.get(url("signups"), headers={**admin, "Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == mimetype


def test_errors_are_json_even_when_csv_is_asked_for(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    response = client.get(
        url("signups", "from=2024-03-02&to=2024-03-01"), headers={**admin, "Accept": "text/csv"}
    )
    assert_error(response, 422, "invalid_input")


# ----------------------------------------------------------------- the range


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("from=2024-03-01", ["to"]),
        ("to=2024-03-01", ["from"]),
        ("", ["from", "to"]),
        ("from=2024-13-01&to=2024-12-31", ["from"]),
        ("from=2024-02-30&to=2024-03-01", ["from"]),
        ("from=01/03/2024&to=2024-03-02", ["from"]),
        ("from=2024-3-1&to=2024-03-02", ["from"]),
        ("from=2024-03-01T00:00:00&to=2024-03-02", ["from"]),
        ("from=2024-03-01&to=tomorrow", ["to"]),
        ("from=&to=2024-03-02", ["from"]),
    ],
)
@pytest.mark.parametrize("report", REPORTS)
def test_bad_or_missing_dates_are_422(
    client: FlaskClient,
    admin: dict[str, str],
    transport: RecordingTransport,
    report: str,
    query: str,
    fields: list[str],
) -> None:
    body = assert_error(client.get(url(report, query), headers=admin), 422, "invalid_input")
    assert sorted(d["field"] for d in body["details"]) == fields
    assert transport.methods("analytics") == []  # refused at the edge


@pytest.mark.parametrize("report", REPORTS)
def test_from_after_to_is_422(
    client: FlaskClient, admin: dict[str, str], transport: RecordingTransport, report: str
) -> None:
    body = assert_error(
        client.get(url(report, "from=2024-03-02&to=2024-03-01"), headers=admin),
        422,
        "invalid_input",
    )
    [detail] = body["details"]
    assert detail["field"] == "query"  # a rule of two parameters: named by the query
    assert "from must not be after to" in detail["message"]
    assert transport.methods("analytics") == []


@pytest.mark.parametrize("report", REPORTS)
def test_a_range_over_a_year_is_422(
    client: FlaskClient, admin: dict[str, str], transport: RecordingTransport, report: str
) -> None:
    body = assert_error(
        client.get(url(report, "from=2023-12-31&to=2024-12-31"), headers=admin),
        422,
        "invalid_input",
    )
    [detail] = body["details"]
    assert detail["field"] == "query"
    assert f"at most {MAX_DAYS} days" in detail["message"]
    assert transport.methods("analytics") == []


@pytest.mark.parametrize(
    ("report", "query", "field"),
    [
        ("enrollments", f"{SPAN}&course_id=abc", "course_id"),
        ("enrollments", f"{SPAN}&course_id=0", "course_id"),
        ("enrollments", f"{SPAN}&course_id=-3", "course_id"),
        ("orders", f"{SPAN}&product_id=1.5", "product_id"),
        ("orders", f"{SPAN}&product_id=0", "product_id"),
        ("orders", f"{SPAN}&product_id={2**63}", "product_id"),
    ],
)
def test_a_bad_filter_is_422(
    client: FlaskClient, admin: dict[str, str], report: str, query: str, field: str
) -> None:
    body = assert_error(client.get(url(report, query), headers=admin), 422, "invalid_input")
    assert [d["field"] for d in body["details"]] == [field]


# ----------------------------------------------------------------- the declarations


@pytest.mark.parametrize("report", REPORTS)
def test_the_document_states_the_range_rule_and_the_csv_answer(app: Flask, report: str) -> None:
    operation = build_document(app)["paths"][f"/api/reports/{report}"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert {"401", "403", "422"} <= set(operation["responses"])
    required = {p["name"]: p["required"] for p in operation["parameters"] if p.get("in") == "query"}
    assert (required["from"], required["to"]) == (True, True)
    assert "`from` must not be after `to`" in operation["description"]
    assert f"at most {MAX_DAYS} days" in operation["description"]
    assert "administrator" in operation["description"]
