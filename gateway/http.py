"""Reading requests and checking what services send back."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from mesh.errors import InvalidInput, MeshError

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


def json_body() -> dict[str, Any]:
    """The request's JSON object: 415 if it is not JSON, 400 if malformed or not an object."""
    if not request.is_json:
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def query_int(name: str) -> int | None:
    """An optional integer query parameter; 422 when it is not an integer."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            "invalid input", [{"field": name, "message": "must be an integer"}]
        ) from None


def from_rpc(model: type[M], data: Any) -> M:
    """Check a service's answer against its contract; a broken answer is our 500."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        log.error("a service answer broke %s: %s", model.__name__, exc)
        raise MeshError("internal error") from None
