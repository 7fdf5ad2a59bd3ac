"""Reading requests and checking what services send back."""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

from flask import Response, jsonify, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.routing import IntegerConverter, Map

from contracts.base import ID_MAX
from mesh.errors import InvalidInput, MeshError

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

_INTEGER = re.compile(r"-?[0-9]{1,19}")


class IdConverter(IntegerConverter):
    """``<id:name>``: a resource id, 1..2**63-1 in ASCII digits; anything else is a 404."""

    regex = r"[0-9]{1,19}"

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=ID_MAX)


def parsed_json() -> Any:
    """The request's parsed JSON body; None when it is absent or malformed."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # too deeply nested: ``silent`` only swallows ValueError
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


def query_ints(*names: str) -> dict[str, int]:
    """The integer query parameters among ``names`` that are present; 422 lists every bad one."""
    values: dict[str, int] = {}
    details: list[dict[str, str]] = []
    for name in names:
        raw = request.args.get(name)
        if raw is None:
            continue
        if _INTEGER.fullmatch(raw):
            values[name] = int(raw)
        else:
            details.append({"field": name, "message": "must be an integer"})
    if details:
        raise InvalidInput("invalid input", details)
    return values


def query_int(name: str) -> int | None:
    """An optional integer query parameter; 422 when it is not an integer."""
    return query_ints(name).get(name)


def from_rpc(model: type[M], data: Any) -> M:
    """Check a service's answer against its contract; a broken answer is our 500."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Never the error's text: it quotes the offending values, i.e. user data.
        fields = [_location(error["loc"]) for error in exc.errors(include_input=False)]
        log.error(
            "a service answer broke %s: %d error(s) at %s",
            model.__name__,
            exc.error_count(),
            ", ".join(fields),
        )
        raise MeshError("internal error") from None


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def created(value: BaseModel, endpoint: str, **values: Any) -> Response:
    """A 201 JSON response of ``value``, with the ``Location`` of ``endpoint(**values)``."""
    response = jsonify(value.model_dump(mode="json"))
    response.status_code = 201
    response.headers["Location"] = url_for(endpoint, **values)
    return response
