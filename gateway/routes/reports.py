"""/api/reports: the analytics reports, for administrators; JSON, or CSV by ``Accept``.

``GET /api/reports/signups?from=2026-01-01&to=2026-01-31`` answers ``{"items": [...]}``;
with ``Accept: text/csv`` the same rows come as a CSV file a spreadsheet opens.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from flask import Blueprint, Response, request
from pydantic import BaseModel

from contracts.analytics import (
    MAX_DAYS,
    EnrollmentsQuery,
    EnrollmentsRow,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
    SignupsRow,
)
from gateway.api import endpoint
from gateway.deps import services
from gateway.schemas import EnrollmentsReport, OrdersReport, SignupsReport

bp = Blueprint("reports", __name__, url_prefix="/api/reports")

CSV = "text/csv"
REPORT_TEXT = (
    "Needs an access token of an administrator. The report covers the UTC days from `from` "
    "to `to`, both included: `from` must not be after `to`, and the range spans at most "
    f"{MAX_DAYS} days (else 422, the detail's field `query`). With `Accept: text/csv`, the "
    "same rows as a CSV attachment: a header line of the rows' fields, then a line per row "
    "(an empty value for a null), CRLF line ends."
)
"""What the document says of every report, beyond what JSON Schema can say of a parameter."""


def wants_csv() -> bool:
    """True when the client prefers CSV to JSON."""
    best = request.accept_mimetypes.best_match(["application/json", CSV])
    return best == CSV


def as_csv(rows: Sequence[BaseModel], model: type[BaseModel], name: str) -> Response:
    """The rows as CSV, one column per field, with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(model.model_fields), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump(mode="json"))
    response = Response(out.getvalue(), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def report(
    rows: Sequence[BaseModel], row: type[BaseModel], page: type[BaseModel], name: str
) -> BaseModel | Response:
    """The report as ``page`` (JSON), or as CSV when the client asks for it."""
    if wants_csv():
        return as_csv(rows, row, name)
    return page(items=list(rows))


@bp.get("/signups")
@endpoint(
    "Sign-ups per day",
    tag="reports",
    auth="admin",
    query=ReportQuery,
    response=SignupsReport,
    also_media=(CSV,),
    description=REPORT_TEXT,
)
def signups(query: ReportQuery) -> BaseModel | Response:
    return report(services().analytics.signups(query), SignupsRow, SignupsReport, "signups")


@bp.get("/enrollments")
@endpoint(
    "Enrolments and lesson completions per day and course",
    tag="reports",
    auth="admin",
    query=EnrollmentsQuery,
    response=EnrollmentsReport,
    also_media=(CSV,),
    description=REPORT_TEXT,
)
def enrollments(query: EnrollmentsQuery) -> BaseModel | Response:
    rows = services().analytics.enrollments(query)
    return report(rows, EnrollmentsRow, EnrollmentsReport, "enrollments")


@bp.get("/orders")
@endpoint(
    "Orders, items, revenue and cancellations per day and product",
    tag="reports",
    auth="admin",
    query=OrdersReportQuery,
    response=OrdersReport,
    also_media=(CSV,),
    description=REPORT_TEXT,
)
def orders(query: OrdersReportQuery) -> BaseModel | Response:
    return report(services().analytics.orders(query), OrdersRow, OrdersReport, "orders")
