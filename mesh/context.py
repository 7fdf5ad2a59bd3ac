"""The correlation id that follows one request through RPC, events and actors."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

CORRELATION_KEY = "correlation_id"  # nameko context-data key, sent as header nameko.correlation_id

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)
