"""The Dramatiq actors' retry options: an outage is waited out, a refused message is not."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from mesh import failures
from mesh.settings import Settings


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()


def run(broker: StubBroker, fn, options: dict) -> None:
    actor = dramatiq.actor(broker=broker, actor_name="flaky", queue_name="q", **options)(fn)
    actor.send()
    worker = Worker(broker, worker_timeout=20)
    worker.start()
    try:
        broker.join("q", fail_fast=False, timeout=30_000)
        worker.join()
    finally:
        worker.stop()


def test_default_email_options_wait_out_a_30_minute_smtp_outage() -> None:
    """Replays Dramatiq's retry decisions with its shortest back-offs over 30 minutes down."""
    settings = Settings()
    options = failures.task_retry_options(
        settings.email_retry_budget_seconds,
        settings.email_retry_min_ms,
        settings.email_retry_max_ms,
        other_retries=settings.event_max_attempts - 1,
        max_retries=settings.email_max_retries,
    )
    down = ConnectionRefusedError("smtp is down")
    waited_ms, retries = 0, 0
    while waited_ms < 30 * 60 * 1000:
        assert options["retry_when"](retries, down), f"gave up after {waited_ms / 60000:.1f} min"
        waited_ms += min(options["min_backoff"] * 2**retries, options["max_backoff"] // 2)
        retries += 1
    assert retries > 10  # the old fixed max_retries=10 gave up after ~17 minutes at best
    refused = smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"no such user")})
    assert options["retry_when"](0, refused) is False
    assert options["retry_when"](settings.event_max_attempts - 1, KeyError("bug")) is False


def test_a_transient_failure_is_retried_past_a_small_attempt_cap(broker: StubBroker) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 12:
            raise ConnectionRefusedError("down")

    run(broker, flaky, failures.task_retry_options(0.5, 10, 40, other_retries=2))
    assert len(calls) == 13
    assert broker.dead_letters == []


def test_an_unknown_failure_gets_few_retries_and_a_permanent_none(broker: StubBroker) -> None:
    calls: list[str] = []

    def buggy() -> None:
        calls.append("bug")
        raise KeyError("bug")

    run(broker, buggy, failures.task_retry_options(60, 10, 40, other_retries=2))
    assert len(calls) == 3
    assert len(broker.dead_letters) == 1


def test_an_explicit_max_retries_wins_over_the_budget() -> None:
    options = failures.task_retry_options(3600, 10, 40, other_retries=2, max_retries=1)
    assert options["max_retries"] == 1
    assert options["retry_when"](0, ConnectionError()) is True
    assert options["retry_when"](1, ConnectionError()) is False
