"""Shapes that exist only at the HTTP edge (the RPC payloads live in ``contracts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt

from contracts.analytics import EnrollmentsRow, OrdersRow, SignupsRow
from contracts.base import Contract
from contracts.content import Passage, Query
from contracts.courses import JobOut, LessonOut, LessonText, MyCourse, Position, Title
from contracts.notifications import NotificationId, NotificationOut
from contracts.users import Role


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: a stable code, a human message, optional details."""

    error: str = Field(examples=["invalid_input"])
    message: str
    details: list[FieldError] | dict[str, Any] | None = None


class RegisteredUser(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int = Field(description="Seconds until the access token expires.")


class NotificationList(BaseModel):
    items: list[NotificationOut]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    services: dict[str, str]
    redis: str


class LimitQuery(Contract):
    """``?limit=N``: how many of the newest."""

    limit: StrictInt = Field(20, ge=1, le=50)


class NotificationsQuery(Contract):
    """``?limit=N&before=ID``: a page of the newest, or of those older than notification ID."""

    limit: StrictInt = Field(20, ge=1, le=50)
    before: NotificationId | None = Field(
        None, description="The id of the last notification seen (``next_before``)."
    )


class EventTypes(Contract):
    """``?types=a,b``: the event types to stream (every known type when absent)."""

    types: str | None = Field(
        None, max_length=1000, description="Comma-separated event types; all when absent."
    )


class LessonJson(Contract):
    """A lesson sent as JSON: its content is ``text``."""

    title: Title
    position: Position | None = None
    text: LessonText


class LessonUpload(Contract):
    """The form fields of a lesson uploaded as a file (``multipart/form-data``)."""

    title: Title
    position: Position | None = None


class LessonList(BaseModel):
    items: list[LessonOut]


class MyCourseList(BaseModel):
    items: list[MyCourse]


class JobList(BaseModel):
    items: list[JobOut]


class SearchQuery(Contract):
    """``?q=text&limit=1..20``."""

    q: Query
    limit: StrictInt = Field(5, ge=1, le=20)


class PassageList(BaseModel):
    items: list[Passage]


class SignupsReport(BaseModel):
    items: list[SignupsRow]


class EnrollmentsReport(BaseModel):
    items: list[EnrollmentsRow]


class OrdersReport(BaseModel):
    items: list[OrdersRow]
