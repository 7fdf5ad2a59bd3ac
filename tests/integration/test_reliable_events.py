"""Retries with back-off, dead letters and replay, with a real nameko service process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Queue

from contracts.users import UserRegistered
from mesh import dead_letters, topology
from mesh.settings import Settings
from tests.integration.conftest import ROOT
from tests.integration.flaky_service import OUTAGE_USER

QUEUE = topology.handler_queue_name("users", "user.registered", "flaky", "on_user_registered")


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def declared(amqp_uri: str, name: str) -> Any:
    with Connection(amqp_uri) as connection:
        try:
            return Queue(name)(connection.channel()).queue_declare(passive=True)
        except connection.channel_errors:
            return None


def consumers(amqp_uri: str, name: str) -> int:
    found = declared(amqp_uri, name)
    return int(found.consumer_count) if found else 0


def waiting(amqp_uri: str, name: str) -> int:
    found = declared(amqp_uri, name)
    return int(found.message_count) if found else 0


@pytest.fixture
def flaky_service(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("EVENT_RETRY_MAX_MS", "400")  # quick retries; the budget stays 6 h
    log = (tmp_path / "flaky.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("nameko")),
            "run",
            "--config",
            "mesh/nameko.yaml",
            "tests.integration.flaky_service",
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: consumers(settings.amqp_uri, QUEUE), 30, "the flaky service")
        yield
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def publish(amqp_uri: str, body: Any) -> None:
    with Connection(amqp_uri) as connection:
        connection.Producer(connection.channel()).publish(
            body, exchange=topology.event_exchange("users"), routing_key="user.registered"
        )


def dead(amqp_uri: str) -> list[Any]:
    """Take every dead letter of the flaky handler."""
    taken = []
    with Connection(amqp_uri) as connection:
        queue = topology.dead_letter_queue(QUEUE)(connection.channel())
        while (message := queue.get(no_ack=True)) is not None:
            taken.append(message)
    return taken


def test_a_transient_failure_is_retried_until_it_succeeds(
    settings: Settings, flaky_service: None
) -> None:
    cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    event = UserRegistered(user_id=1)
    publish(settings.amqp_uri, event.to_wire())
    done = wait_for(lambda: cache.get(f"flaky:done:{event.event_id}"), 10, "the retried event")
    assert done == "2"


def test_an_outage_is_waited_out_past_the_attempt_cap(
    settings: Settings, flaky_service: None
) -> None:
    """A handler failing as if its database were down keeps retrying (EVENT_MAX_ATTEMPTS is
    3 here) and handles the event once the server is back; nothing is dead-lettered."""
    cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    cache.set("flaky:down", 1)
    event = UserRegistered(user_id=OUTAGE_USER)
    try:
        publish(settings.amqp_uri, event.to_wire())
        attempts = f"flaky:attempts:{event.event_id}"
        wait_for(lambda: int(cache.get(attempts) or 0) >= 8, 30, "retries past the cap")
        assert waiting(settings.amqp_uri, f"{QUEUE}.dlq") == 0
        assert cache.get(f"flaky:done:{event.event_id}") is None
    finally:
        cache.delete("flaky:down")
    done = wait_for(lambda: cache.get(f"flaky:done:{event.event_id}"), 10, "the handled event")
    assert int(done) >= 9
    assert waiting(settings.amqp_uri, f"{QUEUE}.dlq") == 0


def test_poison_and_broken_events_are_dead_lettered_then_replayable(
    settings: Settings, flaky_service: None
) -> None:
    poison = UserRegistered(user_id=13)
    publish(settings.amqp_uri, poison.to_wire())
    publish(settings.amqp_uri, {"type": "user.registered", "user_id": "not a number"})
    wait_for(lambda: waiting(settings.amqp_uri, f"{QUEUE}.dlq") == 2, 20, "two dead letters")
    letters = {m.payload.get("event_id", "broken"): m for m in dead(settings.amqp_uri)}
    assert letters[str(poison.event_id)].headers[topology.ATTEMPTS_HEADER] == 3
    assert "failure number 3" in letters[str(poison.event_id)].headers[topology.ERROR_HEADER]
    assert letters["broken"].headers[topology.ATTEMPTS_HEADER] == 1
    assert "ContractViolation" in letters["broken"].headers[topology.ERROR_HEADER]

    # Put the poison back as it was dead-lettered (headers and all) and replay it: it gets
    # a fresh budget, so it goes round all its retries once more.
    cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    letter = letters[str(poison.event_id)]
    assert topology.FIRST_FAILURE_HEADER in letter.headers
    with Connection(settings.amqp_uri) as connection:
        connection.Producer(connection.channel()).publish(
            letter.body,
            exchange="",
            routing_key=f"{QUEUE}.dlq",
            headers=letter.headers,
            content_type=letter.content_type,
            content_encoding=letter.content_encoding,
        )
    assert dead_letters.replay(settings.amqp_uri, QUEUE) == 1
    wait_for(lambda: waiting(settings.amqp_uri, f"{QUEUE}.dlq") == 1, 20, "the replayed poison")
    assert int(cache.get(f"flaky:attempts:{poison.event_id}") or 0) == 6
    (again,) = dead(settings.amqp_uri)
    assert again.headers[topology.ATTEMPTS_HEADER] == 3
    with pytest.raises(dead_letters.UnknownQueue):
        dead_letters.replay(settings.amqp_uri, "no-such-queue")
