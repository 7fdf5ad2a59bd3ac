"""Rules the contracts enforce in code, stated as JSON Schema for the OpenAPI document.

A pydantic validator is a Python function: ``model_json_schema`` cannot see what it refuses,
so without this the document would promise more than the API accepts (schemathesis'
positive-data check finds each such rule). :class:`StatedRules` adds, wherever one of these
validators runs, the JSON Schema that says the same thing:

- ``contracts.base.Text`` (names, titles, descriptions, queries...): no control characters but
  tab, line feed and carriage return;
- the password of a new account: 10 to 128 characters, at least 4 different ones (the list of
  common passwords it also refuses is only described);
- the name of a new account: no character of Unicode's "other" categories (controls, format
  characters, private use, unassigned): the control characters as a pattern, the rest as
  the format :data:`NAME_FORMAT`;
- an e-mail address (``EmailStr``): what ``email-validator`` takes, in outline (a dotted domain,
  no quoted local part, no IP literal, no special-use domain such as ``.test``);
- a partial update (a patch) refuses ``{}``: ``minProperties: 1`` (see :func:`refuses_empty`);
- a contract strips its strings before checking their length: one with a minimum length must
  hold a character that is not white space.

Best moved into the contracts themselves (``Field(pattern=...)`` / ``WithJsonSchema`` next to
each validator); until then ``tests/unit/test_gateway_openapi.py`` holds this table to the
validators.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, get_args

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, EmailStr, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from contracts.base import Text
from contracts.users import PASSWORD_MAX, PASSWORD_MIN, RegisterRequest

NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
"""``Text``: what ``contracts.base`` refuses (Unicode category Cc but tab, LF and CR)."""

NOT_BLANK = r"\S"
"""Somewhere a character that is not white space: a stripped string with a minimum length
(``str_strip_whitespace``) refuses a blank one."""

AT_MOST_THREE_DIFFERENT = r"^([\s\S])\1*(?:([\s\S])(?:\1|\2)*(?:([\s\S])(?:\1|\2|\3)*)?)?$"
"""A string made of at most 3 different characters (a password refuses it)."""


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


EMAIL = r'^[^@\s"]+@[^@\s\[\]]+\.[^@\s.\[\]]+$'
"""An address as ``email-validator`` takes it: no quoted local part, a dotted domain name
(no IP literal), no trailing dot..."""
SPECIAL_USE_DOMAIN = "[@.](?:{})$".format("|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)))
"""...and no special-use domain (``.test``, ``.local``...)."""


NAME_FORMAT = "x-name"
"""The format of an account's name: no character of Unicode's "other" categories (controls,
format characters, private use, unassigned: ``unicodedata.category`` starting with "C") and
at least one that is not white space. A JSON Schema pattern of the categories would be exact
but thousands of ranges long (and slow for every generator), so the format says it."""


def _register_rules() -> dict[Callable[..., Any], JsonSchemaValue]:
    rules: dict[Callable[..., Any], JsonSchemaValue] = {}
    for decorator in RegisterRequest.__pydantic_decorators__.field_validators.values():
        if "password" in decorator.info.fields:
            rules[decorator.func] = {
                "minLength": PASSWORD_MIN,
                "maxLength": PASSWORD_MAX,
                "not": {"pattern": AT_MOST_THREE_DIFFERENT},
                "description": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters (once leading "
                "and trailing white space is dropped), at least 4 different ones; a common "
                "password is refused too.",
            }
        if "name" in decorator.info.fields:
            rules[decorator.func] = {
                "format": NAME_FORMAT,
                "pattern": NO_CONTROL_CHARACTERS,
                "description": "No control, format, private-use or unassigned character "
                f"(format {NAME_FORMAT}); runs of white space become one space.",
            }
    return rules


@functools.cache
def rules() -> dict[Callable[..., Any], JsonSchemaValue]:
    """Each validator function the document states, and the JSON Schema it adds."""
    text_validator = get_args(Text)[1].func
    email = {"pattern": EMAIL, "not": {"pattern": SPECIAL_USE_DOMAIN}}
    return {
        text_validator: {"pattern": NO_CONTROL_CHARACTERS},
        EmailStr._validate: email,  # type: ignore[attr-defined]  # str for type checkers
        **_register_rules(),
    }


def refuses_empty(model: type[BaseModel]) -> bool:
    """True when ``{}`` is refused though no field is required (a patch: at least one field);
    the document then says ``minProperties: 1``."""
    if any(field.is_required() for field in model.model_fields.values()):
        return False
    try:
        model.model_validate({})
    except ValidationError:
        return True
    return False


def _add(json_schema: JsonSchemaValue, rule: JsonSchemaValue) -> JsonSchemaValue:
    """``json_schema`` with ``rule``'s keywords; a second pattern joins the first in allOf."""
    merged = dict(json_schema)
    for keyword, value in rule.items():
        if keyword in merged and keyword != "description":
            merged.setdefault("allOf", []).append({keyword: value})
        else:
            merged[keyword] = value
    return merged


def _not_blank(json_schema: JsonSchemaValue) -> JsonSchemaValue:
    """A string schema with a minimum length: its value must not be white space only."""
    if "anyOf" in json_schema:
        return {**json_schema, "anyOf": [_not_blank(option) for option in json_schema["anyOf"]]}
    if json_schema.get("type") == "string" and json_schema.get("minLength", 0) >= 1:
        return _add(json_schema, {"pattern": NOT_BLANK})
    return json_schema


class StatedRules(GenerateJsonSchema):
    """pydantic's JSON Schema, plus the rules of the validators in :func:`rules`, and the
    white space a contract strips before it checks a minimum length."""

    def function_after_schema(
        self, schema: core_schema.AfterValidatorFunctionSchema
    ) -> JsonSchemaValue:
        json_schema = super().function_after_schema(schema)
        rule = rules().get(schema["function"]["function"])
        return json_schema if rule is None else _add(json_schema, rule)

    def model_field_schema(self, schema: core_schema.ModelField) -> JsonSchemaValue:
        json_schema = super().model_field_schema(schema)
        # A contract strips its strings (``str_strip_whitespace``) before checking them.
        return _not_blank(json_schema) if self._config.str_strip_whitespace else json_schema
