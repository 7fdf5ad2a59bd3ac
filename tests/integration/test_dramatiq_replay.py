"""A dead-lettered Dramatiq message replayed with `dlq replay` gets all its retries again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from kombu import Connection, Queue

from contracts.notifications import EMAIL_QUEUE
from mesh import dead_letters
from mesh.settings import Settings

MAX_RETRIES = 2


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def waiting(amqp_uri: str, name: str) -> int:
    with Connection(amqp_uri) as connection:
        try:
            declared = Queue(name)(connection.channel()).queue_declare(passive=True)
        except connection.channel_errors:
            return 0
        return int(declared.message_count)


@pytest.fixture
def failing_email(settings: Settings) -> Iterator[list[str]]:
    """A worker whose e-mail actor always fails as an SMTP server that is down would."""
    broker = RabbitmqBroker(url=settings.amqp_uri, confirm_delivery=True)
    calls: list[str] = []

    def send_email(key: str) -> None:
        calls.append(key)
        raise ConnectionRefusedError("smtp is down")

    actor = dramatiq.actor(
        broker=broker,
        actor_name="send_email_test",
        queue_name=EMAIL_QUEUE,
        max_retries=MAX_RETRIES,
        min_backoff=10,
        max_backoff=20,
    )(send_email)
    broker.flush(EMAIL_QUEUE)
    broker.flush(f"{EMAIL_QUEUE}.XQ")
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send("welcome-1")
        yield calls
    finally:
        worker.stop()
        broker.flush_all()
        broker.close()


def test_a_replayed_email_starts_a_fresh_retry_budget(
    settings: Settings, failing_email: list[str]
) -> None:
    xq = f"{EMAIL_QUEUE}.XQ"
    wait_for(lambda: waiting(settings.amqp_uri, xq) == 1, 30, "the e-mail dead-lettered")
    assert len(failing_email) == MAX_RETRIES + 1

    assert dead_letters.replay(settings.amqp_uri, EMAIL_QUEUE) == 1
    # Every retry again, not one attempt with the spent count: 3 more calls, then the XQ.
    wait_for(lambda: len(failing_email) == 2 * (MAX_RETRIES + 1), 30, "the replay's retries")
    wait_for(lambda: waiting(settings.amqp_uri, xq) == 1, 30, "the e-mail dead-lettered again")
    assert failing_email == ["welcome-1"] * 2 * (MAX_RETRIES + 1)


def test_a_dramatiq_body_loses_its_retry_options_and_keeps_the_rest() -> None:
    message = dramatiq.Message(
        queue_name=EMAIL_QUEUE,
        actor_name="send_email",
        args=("k",),
        kwargs={},
        options={"retries": 10, "traceback": "...", "eta": 1, "correlation_id": "c-1"},
    )
    fresh = dramatiq.Message.decode(dead_letters.fresh_body(EMAIL_QUEUE, message.encode()))  # type: ignore[arg-type]
    assert fresh.options == {"correlation_id": "c-1"}
    assert (fresh.message_id, fresh.args) == (message.message_id, ("k",))
    assert dead_letters.fresh_body("some.queue", b"{}") == b"{}"
    assert dead_letters.fresh_headers(
        {"x-mesh-attempts": 3, "x-death": [], "x-first-death-queue": "q", "keep": 1}
    ) == {"keep": 1}
