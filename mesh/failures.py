"""Which failures are worth retrying: the one classification every retry path shares.

A *permanent* failure (a payload that breaks its contract, a refused recipient) fails the
same way every time: it is dead-lettered at once. A *transient* one (a server that does not
answer, a timeout, ``Unavailable``) is retried for a whole time budget, long enough to wait
out an outage. Anything else is probably a bug: it gets a few attempts, then a dead letter,
where an operator can look at it and replay it.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any, Literal

import kombu.exceptions
import nameko.exceptions
import pydantic
import pymongo.errors
import redis.exceptions
import sqlalchemy.exc

from contracts.errors import InvalidInput, PermanentFailure, Unavailable

Kind = Literal["permanent", "transient", "unknown"]

PERMANENT: tuple[type[BaseException], ...] = (
    PermanentFailure,
    InvalidInput,
    pydantic.ValidationError,
    smtplib.SMTPRecipientsRefused,
)
TRANSIENT: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,  # ConnectionError, TimeoutError, socket errors, and SMTP errors not refused below
    pymongo.errors.ConnectionFailure,  # AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout
    pymongo.errors.ExecutionTimeout,
    pymongo.errors.WTimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    nameko.exceptions.RpcTimeout,
    nameko.exceptions.UnknownService,
)
# A remote service's own infrastructure failure arrives as nameko's RemoteError.
TRANSIENT_REMOTE_TYPES = frozenset(
    {
        "Unavailable",
        "OperationalError",
        "InterfaceError",
        "DisconnectionError",
        "ConnectionFailure",
        "AutoReconnect",
        "ServerSelectionTimeoutError",
        "NetworkTimeout",
        "ConnectionError",
        "TimeoutError",
        "RpcTimeout",
    }
)


def classify(exc: BaseException) -> Kind:
    """``permanent``, ``transient`` or ``unknown`` (see the module's docstring)."""
    if isinstance(exc, PERMANENT) or _smtp_refused(exc):
        return "permanent"
    if isinstance(exc, TRANSIENT):
        return "transient"
    if isinstance(exc, nameko.exceptions.RemoteError) and exc.exc_type in TRANSIENT_REMOTE_TYPES:
        return "transient"
    return "unknown"


def _smtp_refused(exc: BaseException) -> bool:
    """A 5xx answer about this message (not a login failure, which a config fix cures)."""
    return (
        isinstance(exc, smtplib.SMTPResponseException)
        and not isinstance(exc, smtplib.SMTPAuthenticationError)
        and 500 <= exc.smtp_code < 600
    )


def backoff_ms(attempt: int, base_ms: int, max_ms: int) -> int:
    """Exponential back-off for the ``attempt``-th failure (1-based), capped at ``max_ms``."""
    return int(min(base_ms * 2 ** min(attempt - 1, 62), max_ms))


def retries_within(budget_seconds: float, min_backoff_ms: int, max_backoff_ms: int) -> int:
    """Dramatiq retries whose back-offs add up to at least ``budget_seconds``.

    Before retry ``r`` (0-based) Dramatiq waits ``min_backoff * 2**r`` stretched by a random
    1-2x, or 50-100 % of ``max_backoff`` past it: at least ``min(min_backoff * 2**r,
    max_backoff / 2)``. The count assumes those shortest waits, so the budget is covered.
    """
    total_ms, retries = 0.0, 0
    while total_ms < budget_seconds * 1000:
        total_ms += min(min_backoff_ms * 2 ** min(retries, 62), max_backoff_ms / 2)
        retries += 1
    return retries


def task_retry_when(
    max_retries: int, max_other_retries: int
) -> Callable[[int, BaseException], bool]:
    """A Dramatiq ``retry_when``: never a permanent failure, a transient one ``max_retries``
    times (see :func:`retries_within`), any other ``max_other_retries`` times."""

    def retry_when(retries: int, exc: BaseException) -> bool:
        kind = classify(exc)
        if kind == "permanent":
            return False
        return retries < (max_retries if kind == "transient" else max_other_retries)

    return retry_when


def task_retry_options(
    budget_seconds: float,
    min_backoff_ms: int,
    max_backoff_ms: int,
    other_retries: int,
    max_retries: int | None = None,
) -> dict[str, Any]:
    """Dramatiq actor options that retry a transient failure for ``budget_seconds`` (or
    ``max_retries`` times when given), any other failure ``other_retries`` times."""
    if max_retries is None:
        max_retries = retries_within(budget_seconds, min_backoff_ms, max_backoff_ms)
    return {
        "max_retries": max_retries,  # documents the bound; retry_when is what decides
        "min_backoff": min_backoff_ms,
        "max_backoff": max_backoff_ms,
        "retry_when": task_retry_when(max_retries, min(other_retries, max_retries)),
    }
