"""Per-request hooks: correlation id, trace span, body size, a JSON access line."""

from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, current_app, g, request

from gateway.api import MULTIPART, spec_of
from gateway.http import too_large
from mesh import tracing
from mesh.context import get_correlation_id, new_correlation_id, set_correlation_id

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
log = logging.getLogger("gateway.access")


def request_id() -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    return candidate if _SANE_ID.fullmatch(candidate) else new_correlation_id()


def bind_correlation_id() -> None:
    set_correlation_id(request_id())
    g.request_started = time.perf_counter()
    if tracing.enabled():
        g.trace = _open_request_span()


def _open_request_span() -> tracing.Scope | None:
    """The request's span: a child of the client's ``traceparent`` header, if it sent one."""
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    attributes = {
        "http.request.method": request.method,
        "http.route": route,
        "mesh.correlation_id": get_correlation_id() or "",
    }
    parent = request.headers.get(tracing.TRACEPARENT)
    return tracing.open_span(f"{request.method} {route}", "server", parent, attributes)


def body_limit() -> int | None:
    """The largest body this request may send: the upload limit for a file upload to a
    route that takes one, the JSON limit otherwise."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec = spec_of(view) if view is not None else None
    if spec is not None and spec.upload is not None and request.mimetype == MULTIPART:
        return int(current_app.config["UPLOAD_MAX_BYTES"])
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return None if limit is None else int(limit)


def refuse_large_body() -> None:
    """413 before reading a body whose declared length is over the limit."""
    limit = body_limit()
    if limit is not None and (request.content_length or 0) > limit:
        raise too_large(limit)


def finish(response: Response) -> Response:
    correlation_id = get_correlation_id()
    if correlation_id:
        response.headers[REQUEST_ID_HEADER] = correlation_id
    tracing.tag("http.response.status_code", response.status_code, response.status_code >= 500)
    started = g.get("request_started", time.perf_counter())
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response


def forget_correlation_id(exc: BaseException | None = None) -> None:
    set_correlation_id(None)
    if tracing.enabled():
        tracing.close_span(g.pop("trace", None), exc)


def init_middleware(app: Flask) -> None:
    app.before_request(bind_correlation_id)
    app.before_request(refuse_large_body)
    app.after_request(finish)
    app.teardown_request(forget_correlation_id)
