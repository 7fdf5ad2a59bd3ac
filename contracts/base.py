"""Base models and the one way to validate a payload against a contract."""

from __future__ import annotations

import functools
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from contracts.errors import ContractViolation, InvalidInput

M = TypeVar("M", bound=BaseModel)


def stating(json_schema: JsonSchemaValue, keywords: JsonSchemaValue) -> JsonSchemaValue:
    """``json_schema`` with ``keywords`` added: one it has already (a second ``pattern``) joins
    it under ``allOf``, a ``description`` replaces; a keyword stated already is left as it is."""
    merged = dict(json_schema)
    for keyword, value in keywords.items():
        if merged.get(keyword) == value or {keyword: value} in merged.get("allOf", []):
            continue
        if keyword in merged and keyword != "description":
            merged["allOf"] = [*merged.get("allOf", []), {keyword: value}]
        else:
            merged[keyword] = value
    return merged


class Stated:
    """A rule a validator enforces in code, stated as JSON Schema keywords next to it.

    ``model_json_schema`` cannot look into a Python validator, so without a statement the
    schema (and the gateway's OpenAPI document built from it) would promise more than the
    contract accepts. Put it beside the validator as ``Annotated`` metadata:
    ``Annotated[str, AfterValidator(check), Stated({"pattern": ...})]``, or, for a
    ``field_validator``, on the field's type: ``name: Annotated[str, Stated({...})]``.
    It changes the JSON Schema only, never what validates. ``tests/unit/test_gateway_openapi.py``
    holds each statement to its validator.
    """

    def __init__(self, keywords: JsonSchemaValue) -> None:
        self.keywords = keywords

    def __repr__(self) -> str:
        return f"Stated({self.keywords!r})"

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return stating(handler(core_schema), self.keywords)


NOT_BLANK = r"\S"
"""Somewhere a character that is not white space: a contract strips its strings
(``str_strip_whitespace``) before it checks their length, so one with a minimum length
refuses a blank string; :meth:`Contract.__get_pydantic_json_schema__` states it."""


def _not_blank(json_schema: JsonSchemaValue) -> JsonSchemaValue:
    """A string schema with a minimum length (or a union of some): not white space only."""
    if "anyOf" in json_schema:
        return {**json_schema, "anyOf": [_not_blank(option) for option in json_schema["anyOf"]]}
    if json_schema.get("type") == "string" and json_schema.get("minLength", 0) >= 1:
        return stating(json_schema, {"pattern": NOT_BLANK})
    return json_schema


class Contract(BaseModel):
    """A payload that refuses unknown fields; use Strict* types where coercion would hide a bug.

    Its strings are stripped before they are checked: its JSON Schema says so (:data:`NOT_BLANK`
    on each string field with a minimum length).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        if cls.model_config.get("str_strip_whitespace"):
            target = handler.resolve_ref_schema(json_schema)
            properties = target.get("properties", {})
            for name, field in properties.items():
                properties[name] = _not_blank(field)
        return json_schema


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # SQLite and the embedded MongoDB server hand back naive datetimes that were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class Patch(Contract):
    """A partial update: at least one field, and no field sent as null.

    Its JSON Schema states the first (``minProperties: 1``: no field is required, yet ``{}`` is
    refused); the second is the gateway's to state (a request body never offers null)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"fields cannot be null: {', '.join(nulls)}")
        return self


class Event(Contract):
    """A domain event: past tense, ids rather than whole objects.

    Unknown fields are ignored, not refused: during a rolling upgrade a consumer may
    meet an event from a newer publisher, and must not dead-letter it for an extra field.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    type: ClassVar[str]
    source: ClassVar[str]

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: UtcDatetime = Field(default_factory=_utcnow)
    version: int = 1

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready body published on the bus."""
        return {"type": self.type, **self.model_dump(mode="json")}


ID_MAX = 2**31 - 1
"""The largest id: the services' id columns are 32-bit INTEGERs on every engine, so a larger
one can name nothing (and PostgreSQL refuses to compare an INTEGER column with it)."""
Id = Annotated[StrictInt, Field(ge=1, le=ID_MAX)]
"""A resource id: a positive integer up to :data:`ID_MAX` (never a bool or a numeric string)."""


def _no_control_characters(value: str) -> str:
    # NUL and friends are refused at the edge: PostgreSQL rejects them mid-query otherwise.
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
"""What :func:`_no_control_characters` accepts, as a pattern: no character of Unicode's category
Cc (U+0000-U+001F, U+007F-U+009F) but tab, line feed and carriage return."""

Text = Annotated[
    str, AfterValidator(_no_control_characters), Stated({"pattern": NO_CONTROL_CHARACTERS})
]
"""A string that may be stored or searched: no control characters but tab and newlines."""

NOT_ON_ONE_LINE = {"Cc", "Zl", "Zp"}  # controls, U+2028 LINE and U+2029 PARAGRAPH SEPARATOR


def _one_line(value: str) -> str:
    # A name ends up in one-line places (an e-mail Subject, a log line, a header).
    if any(unicodedata.category(ch) in NOT_ON_ONE_LINE for ch in value):
        raise ValueError("must be one line, without control characters")
    return value


ONE_LINE = r"^[^\x00-\x1F\x7F-\x9F\u2028\u2029]*$"
"""What :func:`_one_line` accepts, as a pattern: no character of Unicode's category Cc
(U+0000-U+001F, U+007F-U+009F), nor a line or paragraph separator (U+2028, U+2029)."""

Line = Annotated[str, AfterValidator(_one_line), Stated({"pattern": ONE_LINE})]
"""A single-line string (a name, a title): no control character at all, no line break."""


class Viewer(Contract):
    """Who asks: a user, and whether an administrator (only ``True`` counts)."""

    user_id: Id
    is_admin: StrictBool = False


OPERATOR = Viewer(user_id=ID_MAX, is_admin=True)
"""The mesh's own operator tools (the ``mesh`` CLI): an administrator that is no user."""


def is_id(value: Any) -> bool:
    """True for a positive int that is not a bool and fits an id column (:data:`ID_MAX`)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ID_MAX


def require_id(value: Any, field: str) -> int:
    """``value`` as an id, or InvalidInput naming ``field``."""
    if not is_id(value):
        raise InvalidInput("invalid input", [{"field": field, "message": "must be a positive id"}])
    return int(value)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Per-field details of a pydantic error, safe to show a client."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` against ``model``; raise InvalidInput with per-field details."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("invalid input", field_errors(exc)) from None


@functools.lru_cache(maxsize=128)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    """Building an adapter costs a millisecond; each type gets one, once."""
    return TypeAdapter(kind)


def parse_value(kind: Any, value: Any, field: str) -> Any:
    """Validate one value against a type; raise InvalidInput naming ``field``."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        details = [{"field": field, "message": err["msg"]} for err in exc.errors(include_url=False)]
        raise InvalidInput("invalid input", details) from None


def parse_event(model: type[M], body: Any) -> M:
    """Validate an event body taken off the bus; a broken one can never succeed."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "type"}
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ContractViolation(f"{model.__name__} broke its contract", field_errors(exc)) from None
