from __future__ import annotations

import uuid

import pytest

from contracts.base import parse, parse_event
from contracts.errors import ContractViolation, InvalidInput, PermanentFailure
from contracts.users import RegisterRequest, UserOut, UserRegistered

GOOD = {"email": "Ann@Example.com", "password": "correct-horse-9", "name": "  Ann   Lee "}


def test_register_request_normalises_email_and_name() -> None:
    request = parse(RegisterRequest, GOOD)
    assert request.email == "ann@example.com"
    assert request.name == "Ann Lee"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", 42),
        ("password", "short"),
        ("password", "password123"),
        ("password", "aaaaaaaaaaaa"),
        ("password", "x" * 129),
        ("name", ""),
        ("name", "a" * 101),
        ("name", "bad\x00name"),
        ("name", ["list"]),
    ],
)
def test_register_request_refuses_bad_fields(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(RegisterRequest, {**GOOD, field: value})
    assert [d["field"] for d in caught.value.details] == [field]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(RegisterRequest, {**GOOD, "is_admin": True})
    assert caught.value.details[0]["field"] == "is_admin"


def test_event_carries_id_time_and_version() -> None:
    wire = UserRegistered(user_id=7).to_wire()
    assert wire["type"] == "user.registered"
    assert uuid.UUID(wire["event_id"])
    assert wire["occurred_at"].endswith("Z")
    assert wire["version"] == 1


def test_event_round_trips_from_the_wire() -> None:
    event = UserRegistered(user_id=7)
    assert parse_event(UserRegistered, event.to_wire()) == event


def test_broken_event_is_a_permanent_contract_violation() -> None:
    with pytest.raises(ContractViolation) as caught:
        parse_event(UserRegistered, {"user_id": "seven"})
    assert isinstance(caught.value, PermanentFailure)
    assert isinstance(caught.value, InvalidInput)  # what the gateway answers 422 for


def test_naive_datetimes_are_read_as_utc() -> None:
    out = UserOut(id=1, email="a@example.com", name="A", created_at="2026-01-02T03:04:05")
    assert out.model_dump(mode="json")["created_at"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("value", ["a\x00b", "bell\x07", "esc\x1b[0m"])
def test_control_characters_are_refused_where_text_is_stored_or_searched(value: str) -> None:
    from contracts.catalog import ProductCreate, ProductQuery
    from contracts.users import Credentials

    for model, data in (
        (Credentials, {"email": value, "password": "x"}),
        (ProductQuery, {"q": value}),
        (ProductCreate, {"name": value, "price_cents": 1}),
        (ProductCreate, {"name": "ok", "description": value, "price_cents": 1}),
    ):
        with pytest.raises(InvalidInput):
            parse(model, data)


def test_descriptions_keep_their_newlines_and_tabs() -> None:
    from contracts.catalog import ProductCreate

    text = "line one\r\n\tline two"
    assert (
        parse(ProductCreate, {"name": "ok", "description": text, "price_cents": 1}).description
        == text
    )


def test_an_event_from_a_newer_publisher_is_read_not_refused() -> None:
    wire = {**UserRegistered(user_id=7).to_wire(), "added_later": "x"}
    assert parse_event(UserRegistered, wire).user_id == 7


# ----------------------------------------------------------------- the schema states the rules


def test_a_contracts_own_json_schema_states_its_validators_rules() -> None:
    """No gateway in between: ``model_json_schema`` says what the validators refuse
    (``tests/unit/test_gateway_openapi.py`` holds each statement to its validator)."""
    from contracts.base import NO_CONTROL_CHARACTERS, NOT_BLANK, ONE_LINE
    from contracts.catalog import ProductCreate, ProductPatch
    from contracts.courses import CoursePatch
    from contracts.users import EMAIL, NAME_FORMAT, PASSWORD_MAX, PASSWORD_MIN

    fields = RegisterRequest.model_json_schema()["properties"]
    assert fields["password"]["minLength"] == PASSWORD_MIN
    assert fields["password"]["maxLength"] == PASSWORD_MAX
    assert "pattern" in fields["password"]["not"]
    assert fields["name"]["format"] == NAME_FORMAT
    assert fields["name"]["pattern"] == NO_CONTROL_CHARACTERS
    assert {"pattern": NOT_BLANK} in fields["name"]["allOf"]
    assert fields["email"]["pattern"] == EMAIL
    assert ProductCreate.model_json_schema()["properties"]["name"]["pattern"] == ONE_LINE
    assert ProductPatch.model_json_schema()["minProperties"] == 1
    assert CoursePatch.model_json_schema(mode="serialization")["minProperties"] == 1
    assert "minProperties" not in ProductCreate.model_json_schema()


def test_a_statement_changes_the_schema_never_what_validates() -> None:
    from typing import Annotated

    from pydantic import TypeAdapter

    from contracts.base import Stated

    checked = TypeAdapter(Annotated[str, Stated({"pattern": "^a", "maxLength": 1})])
    assert checked.validate_python("bbb") == "bbb"
    assert checked.json_schema() == {"type": "string", "pattern": "^a", "maxLength": 1}


def test_a_second_pattern_joins_the_first_once() -> None:
    from contracts.base import stating

    once = stating({"type": "string", "pattern": "^a"}, {"pattern": "b", "description": "x"})
    assert once == {
        "type": "string",
        "pattern": "^a",
        "allOf": [{"pattern": "b"}],
        "description": "x",
    }
    assert stating(once, {"pattern": "b"}) == once
    assert stating(once, {"pattern": "^a"}) == once
