"""The one JSON error format: ``{"error": code, "message": str, "details"?: ...}``."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, jsonify
from flask_jwt_extended import JWTManager
from flask_limiter import RateLimitExceeded
from nameko.exceptions import RemoteError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from contracts.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    InvalidInput,
    MeshError,
    NotFound,
    Unavailable,
)
from gateway import deps
from gateway.bulkhead import ServiceBusy

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
MESSAGES = {
    400: "bad request",
    401: "authentication required",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "the body is too large",
    415: "unsupported media type",
    429: "too many requests",
    500: "internal error",
}
BEARER_CHALLENGE = 'Bearer error="invalid_token"'
RETRY_AFTER_SECONDS = 5
"""What a 503 tells a client to wait (``Retry-After``) when nothing more precise is known."""

# Each error a service may raise, as an HTTP status; the code is CODES[status]. A subclass
# takes the entry of its nearest listed base; anything unlisted is an internal error.
MAPPED_ERRORS: tuple[tuple[type[MeshError], int], ...] = (
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (AuthenticationFailed, 401),
    (Forbidden, 403),
    (Unavailable, 503),
)


def status_of(exc: MeshError) -> int:
    """The HTTP status of a mesh error (500 when no entry matches)."""
    for error, status in MAPPED_ERRORS:
        if isinstance(exc, error):
            return status
    return 500


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON error response in the one format."""
    body: dict[str, Any] = {"error": code or CODES.get(status, "error"), "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def handle_mesh_error(exc: MeshError) -> Response:
    status = status_of(exc)
    if status == 500:
        log.error("internal error: %s", exc, exc_info=exc)
        return error_response(500, MESSAGES[500])
    if status == 503:
        # A call refused without being made (gateway.bulkhead) says when to try again.
        retry_after = exc.retry_after if isinstance(exc, ServiceBusy) else RETRY_AFTER_SECONDS
        return unavailable(exc.message, retry_after)
    return error_response(status, exc.message, details=exc.details)


def unavailable(message: str, retry_after: int = RETRY_AFTER_SECONDS) -> Response:
    """The one 503, whichever part did not answer: ``Retry-After`` says when to try again."""
    return error_response(503, message, headers={"Retry-After": str(retry_after)})


def handle_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    custom = exc.description != type(exc).description
    message = str(exc.description) if custom else MESSAGES.get(status, exc.name.lower())
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(status, message, headers=headers)


def handle_rate_limited(exc: RateLimitExceeded) -> Response:
    retry_after = _retry_after(exc)
    message = f"too many requests, retry in {retry_after} s"
    return error_response(429, message, headers={"Retry-After": str(retry_after)})


def _retry_after(exc: RateLimitExceeded) -> int:
    current = deps.deps().limiter.current_limit
    if current is not None and current.breached:
        return max(1, math.ceil(current.window.reset_time - time.time()))
    return int(exc.limit.limit.get_expiry())


def handle_redis_error(exc: Exception) -> Response:
    log.warning("redis unreachable: %r", exc)
    return unavailable("a backing store did not answer")


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, RemoteError):
        log.error("remote error: %s", exc)
    else:
        log.exception("unhandled error")
    return error_response(500, MESSAGES[500])


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(MeshError, handle_mesh_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    app.register_error_handler(RedisConnectionError, handle_redis_error)
    app.register_error_handler(RedisTimeoutError, handle_redis_error)
    app.register_error_handler(Exception, handle_unexpected)


def _token_error(message: str) -> Response:
    return error_response(401, message, headers={"WWW-Authenticate": BEARER_CHALLENGE})


def register_jwt_loaders(jwt: JWTManager) -> None:
    """Make flask-jwt-extended answer in the one format, always 401."""
    jwt.unauthorized_loader(
        lambda _reason: error_response(
            401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    )
    jwt.invalid_token_loader(lambda _reason: _token_error("invalid token"))
    jwt.expired_token_loader(lambda _header, _claims: _token_error("token has expired"))
    jwt.revoked_token_loader(lambda _header, _claims: _token_error("token has been revoked"))
    jwt.needs_fresh_token_loader(lambda _header, _claims: _token_error("fresh token required"))
    jwt.token_verification_failed_loader(lambda _header, _claims: _token_error("invalid token"))
    jwt.user_lookup_error_loader(lambda _header, _claims: _token_error("unknown user"))
