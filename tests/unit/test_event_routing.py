from __future__ import annotations

import smtplib

import pymongo.errors
import pytest
import sqlalchemy.exc
from nameko.exceptions import RemoteError, RpcTimeout

from contracts.errors import ContractViolation, InvalidInput, Unavailable
from mesh import failures
from mesh.events import RetryPolicy, Route, route_failure

POLICY = RetryPolicy(max_attempts=3, base_ms=1000, max_backoff_ms=60_000, budget_seconds=3600)
T0 = 1_700_000_000.0


def test_unknown_failures_retry_until_attempts_are_spent() -> None:
    assert route_failure(0, None, RuntimeError("x"), POLICY, T0) == Route("retry", 1, T0, 1000)
    assert route_failure(1, T0, RuntimeError("x"), POLICY, T0 + 1) == Route("retry", 2, T0, 2000)
    assert route_failure(2, T0, RuntimeError("x"), POLICY, T0 + 3).where == "dead"


def test_a_contract_violation_goes_straight_to_the_dead_letters() -> None:
    assert route_failure(0, None, ContractViolation("bad"), POLICY, T0) == Route("dead", 1, T0)
    assert route_failure(0, None, InvalidInput("bad"), POLICY, T0).where == "dead"


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("mongo down"),
        TimeoutError("users.get_user did not answer"),
        Unavailable("users is down"),
        RpcTimeout("users.get_user"),
        pymongo.errors.ServerSelectionTimeoutError("no server"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("gone")),
        RemoteError("Unavailable", "the database is down"),
    ],
)
def test_a_transient_failure_outlives_the_attempt_cap_and_a_30_minute_outage(
    exc: BaseException,
) -> None:
    """An hour of a server down: every retry goes back to the retry queue, none dies."""
    attempts, now, first = 0, T0, None
    while now - T0 < 30 * 60:
        route = route_failure(attempts, first, exc, POLICY, now)
        assert route.where == "retry", (attempts, now - T0)
        attempts, first = route.attempts, route.first_failure
        now += route.delay_ms / 1000
    assert attempts > POLICY.max_attempts
    assert first == T0


def test_a_transient_failure_dies_once_its_budget_is_spent() -> None:
    exc = ConnectionError("still down")
    assert route_failure(40, T0, exc, POLICY, T0 + 3599).where == "retry"
    assert route_failure(41, T0, exc, POLICY, T0 + 3600) == Route("dead", 42, T0)


def test_backoff_doubles_and_is_capped() -> None:
    assert [failures.backoff_ms(n, 1000, 60_000) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert failures.backoff_ms(30, 1000, 60_000) == 60_000
    assert failures.backoff_ms(10_000, 1000, 60_000) == 60_000


def test_failures_are_classified() -> None:
    assert failures.classify(ContractViolation("bad")) == "permanent"
    assert failures.classify(OSError("reset")) == "transient"
    assert failures.classify(RemoteError("KeyError", "x")) == "unknown"
    assert failures.classify(KeyError("bug")) == "unknown"
    refused = smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")})
    assert failures.classify(refused) == "permanent"
    assert failures.classify(smtplib.SMTPDataError(554, b"rejected")) == "permanent"
    assert failures.classify(smtplib.SMTPDataError(451, b"try later")) == "transient"
    assert failures.classify(smtplib.SMTPAuthenticationError(535, b"bad login")) == "transient"
    assert failures.classify(smtplib.SMTPServerDisconnected("gone")) == "transient"


def test_dramatiq_retries_cover_the_budget_at_the_shortest_jitter() -> None:
    retries = failures.retries_within(1800, 1000, 300_000)
    waits = [min(1000 * 2**r, 150_000) for r in range(retries)]
    assert sum(waits) >= 1800 * 1000 > sum(waits[:-1])
    assert failures.retries_within(1, 1000, 300_000) == 1


def test_the_email_actor_dead_letters_are_replayable() -> None:
    from mesh import dead_letters

    assert dead_letters.dead_letter_queue("email") == "email.XQ"
    assert "email" in dead_letters.replayable_queues()
    assert dead_letters.dead_letter_queue("mesh.mirror") == "mesh.mirror.dlq"
