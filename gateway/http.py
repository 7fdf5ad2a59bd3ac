"""Reading requests: the client's address behind proxies, JSON bodies, ids in paths; and the
201 answer."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from flask import Flask, Response, jsonify, request, url_for
from pydantic import BaseModel
from werkzeug.exceptions import BadRequest, NotFound, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from contracts.base import ID_MAX
from contracts.errors import InvalidInput

INTEGER = re.compile(r"-?[0-9]{1,19}")
ID_DIGITS = len(str(ID_MAX))
WHOLE_DIGITS_MAX = 30
"""A whole JSON number of more digits stays a float (no giant int from ``1e999999``)."""


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` proxies, take the client's address, scheme and host from
    the X-Forwarded-* headers they set (ProxyFix, that many hops); with 0 the headers are
    ignored, as a client can write them."""
    hops = int(app.config.get("TRUSTED_PROXIES", 0))
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )


class IdConverter(BaseConverter):
    """``<id:name>``: a resource id, 1..ID_MAX (2**31-1) in ASCII digits; anything else is a 404.

    Out-of-range digits raise NotFound outright: a converter's ValidationError would let
    werkzeug go on matching, and answer 405 when another rule has the path with other methods.
    """

    regex = r"[0-9]+"
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = int(value) if len(value) <= ID_DIGITS else 0
        if not 1 <= number <= ID_MAX:
            raise NotFound("not found")
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _number(text: str) -> int | float:
    """A JSON number written with a fraction or an exponent: an int when its value is whole
    (JSON, and JSON Schema's ``integer``, make no difference between 2.0 and 2), else a float."""
    value = Decimal(text)
    if value == value.to_integral_value() and value.adjusted() < WHOLE_DIGITS_MAX:
        return int(value)
    return float(text)


def _not_a_number(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def parsed_json() -> Any:
    """The request's parsed JSON body; None when it is absent or malformed (NaN and Infinity
    are not JSON)."""
    if not request.is_json:
        return None
    try:
        return json.loads(
            request.get_data(cache=True), parse_float=_number, parse_constant=_not_a_number
        )
    except (ValueError, RecursionError):  # RecursionError: too deeply nested
        return None


def json_body() -> dict[str, Any]:
    """The request's JSON object: 415 if it is not JSON, 400 if malformed or not an object."""
    if not request.is_json:
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    body = parsed_json()
    if body is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def refuse_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """422 for every field sent as ``null`` (leave a field out to leave it unchanged)."""
    details = [
        {"field": name, "message": "must not be null (leave the field out instead)"}
        for name, value in body.items()
        if value is None
    ]
    if details:
        raise InvalidInput("invalid input", details)
    return body


def too_large(limit: int) -> RequestEntityTooLarge:
    """The one 413, naming the limit."""
    return RequestEntityTooLarge(f"the body is larger than the limit of {limit} bytes")


class JobIdConverter(BaseConverter):
    """``<job:name>``: a job id, 32 lowercase hex digits; anything else is a 404."""

    regex = r"[0-9a-f]{32}"
    part_isolating = True


class ConversationIdConverter(JobIdConverter):
    """``<conversation:name>``: a conversation id, 32 lowercase hex digits; else a 404."""


def created(value: BaseModel, endpoint: str, *, status: int = 201, **values: Any) -> Response:
    """A 201 (or ``status``) JSON response of ``value``, with the ``Location`` of
    ``endpoint(**values)``."""
    response = jsonify(value.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = url_for(endpoint, **values)
    return response
