"""The OpenAPI document: every route declared, a valid OpenAPI 3.1 document, and the rules the
contracts state for their validators (``contracts.base.Stated``, a patch's ``minProperties``, the
white space a contract strips) held to those validators: each value's verdict by the contract's
own ``model_json_schema`` is the validator's."""

from __future__ import annotations

import importlib
import pkgutil
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from pydantic import BaseModel, TypeAdapter, ValidationError

import contracts
from contracts.base import NO_CONTROL_CHARACTERS, NOT_BLANK, Contract, Text
from contracts.catalog import ProductCreate, ProductPatch
from contracts.courses import CoursePatch
from contracts.users import NAME_FORMAT, Credentials, RegisterRequest
from gateway.api import endpoint
from gateway.openapi import build_document, routes
from tests.unit.service_fakes import PASSWORD

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    built: dict[str, Any] = app.test_client().get("/api/openapi.json").get_json()
    return built


# ----------------------------------------------------------------- every route is declared


def test_every_rule_of_the_app_is_a_declared_route(app: Flask) -> None:
    declared = {(route.path, route.method) for route in routes(app)}
    served = {
        (re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) & METHODS
    }
    assert served == declared
    assert len(declared) >= 40


def test_a_route_without_a_declaration_cannot_be_documented(make_app: Any) -> None:
    app = make_app()

    def undeclared() -> str:
        return "hidden"

    app.add_url_rule("/api/hidden", view_func=undeclared)
    with pytest.raises(LookupError, match="/api/hidden"):
        routes(app)

    @endpoint("Shown", tag="x")
    def declared() -> str:
        return "shown"

    app = make_app()
    app.add_url_rule("/api/shown", view_func=declared)
    assert ("/api/shown", "get") in {(r.path, r.method) for r in routes(app)}


# ----------------------------------------------------------------- a valid OpenAPI 3.1 document


def _schemas(node: Any, key: str = "") -> Iterator[dict[str, Any]]:
    """Every Schema Object of the document (the values of ``schema`` and of components)."""
    if isinstance(node, dict):
        if key == "schema" and isinstance(node, dict):
            yield node
        for name, value in node.items():
            if key == "schemas" and isinstance(value, dict):
                yield value
            yield from _schemas(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 schema


def test_every_schema_of_the_document_is_valid_json_schema(document: dict[str, Any]) -> None:
    """The OpenAPI schema does not look into Schema Objects: each is checked on its own
    (JSON Schema 2020-12, OpenAPI 3.1's dialect), and each pattern compiles for Python and
    for a Rust/ECMA engine alike."""
    schemas = list(_schemas(document))
    assert len(schemas) > 100
    for schema in schemas:
        jsonschema_rs.meta.validate(schema)
    for pattern in set(_patterns(document)):
        re.compile(pattern)
        jsonschema_rs.validator_for({"pattern": pattern})


def test_the_document_is_built_once_per_app(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/openapi.json").get_json() == client.get("/api/openapi.json").get_json()
    assert build_document(app) == client.get("/api/openapi.json").get_json()


# ----------------------------------------------------------------- what the document states


def test_request_bodies_never_offer_null(document: dict[str, Any]) -> None:
    """A field sent as null is 422 (leave it out): no body schema admits null."""
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            if body is None:
                continue
            fields = schemas[body["$ref"].rsplit("/", 1)[1]]["properties"]
            for name, field in fields.items():
                assert "null" not in str(field), (path, name)
                assert field.get("default", 0) is not None, (path, name)


def refuses_empty(model: type[BaseModel]) -> bool:
    """True when ``{}`` is refused though no field is required (a patch: at least one field)."""
    if any(field.is_required() for field in model.model_fields.values()):
        return False
    try:
        model.model_validate({})
    except ValidationError:
        return True
    return False


def _contracts() -> list[type[Contract]]:
    for module in pkgutil.iter_modules(contracts.__path__):
        importlib.import_module(f"contracts.{module.name}")
    found: list[type[Contract]] = []
    kinds = [Contract]
    while kinds:
        kind = kinds.pop()
        found.append(kind)
        kinds += kind.__subclasses__()
    return [kind for kind in found if kind.__module__.startswith("contracts.")]


def test_a_contract_states_minproperties_exactly_when_it_refuses_empty() -> None:
    models = _contracts()
    assert {ProductPatch, CoursePatch, ProductCreate} <= set(models)
    for model in models:
        stated = model.model_json_schema().get("minProperties") == 1
        assert stated == refuses_empty(model), model.__name__
    assert refuses_empty(ProductPatch) and refuses_empty(CoursePatch)
    assert not refuses_empty(ProductCreate)


def test_a_patch_states_that_it_needs_a_field(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ProductPatch"]["minProperties"] == 1
    assert schemas["CoursePatch"]["minProperties"] == 1
    assert "minProperties" not in schemas["ProductCreate"]


def test_a_required_query_parameter_is_required(document: dict[str, Any]) -> None:
    search = document["paths"]["/api/courses/{course_id}/search"]["get"]["parameters"]
    required = {p["name"]: p["required"] for p in search if p.get("in") == "query"}
    assert required == {"q": True, "limit": False}
    products = document["paths"]["/api/products"]["get"]["parameters"]
    assert all(not p["required"] for p in products if p.get("in") == "query")


def test_query_text_states_its_control_character_rule(document: dict[str, Any]) -> None:
    for path in ("/api/products", "/api/courses/{course_id}/search"):
        [q] = [p for p in document["paths"][path]["get"]["parameters"] if p.get("name") == "q"]
        assert q["schema"]["pattern"] == NO_CONTROL_CHARACTERS, path


def test_the_upload_names_its_content_types(document: dict[str, Any]) -> None:
    lessons = document["paths"]["/api/courses/{course_id}/lessons"]["post"]["requestBody"]
    multipart = lessons["content"]["multipart/form-data"]
    assert "text/markdown" in multipart["encoding"]["file"]["contentType"]
    assert multipart["schema"]["properties"]["file"]["minLength"] == 1
    assert set(multipart["schema"]["required"]) == {"title", "file"}


# ----------------------------------------------------------------- the stated rules are the rules


def _accepts(kind: Any, value: Any) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False
    return True


def _is_name(value: str) -> bool:
    """The format :data:`~contracts.users.NAME_FORMAT`, as its docstring defines it."""
    return not any(unicodedata.category(ch).startswith("C") for ch in value)


def _stated(schema: dict[str, Any], value: str) -> bool:
    """The verdict of a contract's JSON Schema on ``value``, its one custom format included."""
    validator = jsonschema_rs.validator_for(
        schema, validate_formats=True, formats={NAME_FORMAT: _is_name}
    )
    return validator.is_valid(value)


def _field(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema the contract itself states for one field (no gateway in between)."""
    field: dict[str, Any] = model.model_json_schema()["properties"][name]
    return field


@pytest.mark.parametrize(
    "value",
    ["plain", "tab\tline\nreturn\r", "é ü 漢字 🙂", "\x00", "a\x1fb", "\x7f", "\x85", "\x9f"],
)
def test_text_refuses_what_its_schema_says(value: str) -> None:
    schema = TypeAdapter(Text).json_schema()
    assert schema["pattern"] == NO_CONTROL_CHARACTERS
    assert _accepts(Text, value) == _stated(schema, value)


PASSWORDS = [
    PASSWORD,
    "aaaaaaaaaa",
    "abababababab",
    "abcabcabcabc",
    "abcdabcdab",
    "short1",
    "x" * 129,
    "  spaced out password  ",
    "\n\n\n\nabcd\n\n\n\n",
]


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_password_rule_is_what_the_contract_states(password: str) -> None:
    """Stated of the password once stripped, as its description says (the list of common
    passwords is only described: none of these is one)."""
    body = {"email": "ann@example.com", "name": "Ann", "password": password}
    stated = _stated(_field(RegisterRequest, "password"), password.strip())
    assert _accepts(RegisterRequest, body) == stated


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ann@example.com", True),
        ("a.b+c@sub.example.org", True),
        ("x@nav.test", False),
        ("x@printer.LOCAL", False),
        ("x@localhost", False),
        ('"a b"@example.com', False),
        ("x@[192.0.2.1]", False),
        ("x@example.com.", False),
    ],
)
def test_the_email_rule_is_what_the_contract_states(email: str, valid: bool) -> None:
    body = {"email": email, "name": "Ann", "password": PASSWORD}
    assert _accepts(RegisterRequest, body) is valid
    assert _stated(_field(RegisterRequest, "email"), email) is valid


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Ann Lee", True),
        ("  Ann  ", True),
        ("  ", False),
        ("a\x00b", False),
        ("a\u200bb", False),
        ("\ue000", False),
        ("\U000e0001", False),
        ("\U0010fffe", False),
    ],
)
def test_the_name_rule_is_what_the_contract_states(name: str, valid: bool) -> None:
    """Stated with its format ``x-name`` (what a generator is taught, see the schemathesis
    test); the pattern alone states the control characters only."""
    body = {"email": "ann@example.com", "name": name, "password": PASSWORD}
    assert _accepts(RegisterRequest, body) is valid
    assert _stated(_field(RegisterRequest, "name"), name) is valid


def test_a_blank_string_is_refused_where_a_length_is_required(document: dict[str, Any]) -> None:
    assert not _accepts(Credentials, {"email": "   ", "password": PASSWORD})
    email = _field(Credentials, "email")
    assert {"pattern": NOT_BLANK} in email["allOf"]
    assert not _stated(email, "   ")
    assert document["components"]["schemas"]["Credentials"]["properties"]["email"] == email
