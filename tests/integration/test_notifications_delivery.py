"""Each user's live stream, the e-mail's delivery status and paging, on the embedded MongoDB
server, the real Redis and Dramatiq's own worker (StubBroker with its Retries middleware)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest
import redis
from bson import ObjectId
from dramatiq.brokers.stub import StubBroker
from pymongo.database import Database

from contracts.notifications import (
    EMAIL_QUEUE,
    SEND_EMAIL_ACTOR,
    USER_STREAM_MAXLEN,
    ListRequest,
    NotificationOut,
    user_stream_key,
)
from contracts.users import UserOut, UserRegistered
from mesh.clients import make_mongo, make_redis
from mesh.settings import Settings
from services.notifications import actors, logic, messages
from services.notifications.streams import FIELD, UserStreams
from tests.integration.conftest import free_port
from tests.unit.fakes import RecordingTasks

STAMP = datetime(2026, 1, 2, tzinfo=UTC)


def user(user_id: int) -> UserOut:
    return UserOut(id=user_id, email=f"u{user_id}@example.com", name="Eve", created_at=STAMP)


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    """The test Redis; the streams of the users these tests use start empty."""
    connection = make_redis(settings)
    keys = [user_stream_key(n) for n in range(1, 10)]
    connection.delete(*keys)
    yield connection
    connection.delete(*keys)
    connection.close()


class FlakyStreams:
    """UserStreams whose first ``failures`` appends fail as a lost connection does."""

    def __init__(self, real: UserStreams, failures: int) -> None:
        self.real = real
        self.failures = failures

    def append(self, notification: NotificationOut) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise redis.ConnectionError("Redis went away")
        return self.real.append(notification)


def welcome(db: Database, outlets: logic.Outlets, user_id: int = 5) -> UserRegistered:
    event = UserRegistered(user_id=user_id)
    logic.record(db, outlets, event, messages.welcome(event, user(user_id)))
    return event


def stream_of(client: redis.Redis, user_id: int) -> list[dict[str, Any]]:
    return [json.loads(fields[FIELD]) for _, fields in client.xrange(user_stream_key(user_id))]


# ----------------------------------------------------------------- the user's stream


def test_a_stored_notification_is_on_its_users_stream_without_the_address(
    db: Database, client: redis.Redis
) -> None:
    outlets = logic.Outlets(RecordingTasks(), UserStreams(client))
    event = welcome(db, outlets, user_id=5)
    welcome(db, outlets, user_id=6)
    [entry] = stream_of(client, 5)
    stored = db[logic.COLLECTION].find_one({"key": logic.notification_key(event, 5)})
    assert stored is not None
    assert entry == logic.to_out(stored).model_dump(mode="json")
    assert entry["event_id"] == str(event.event_id) and entry["email_status"] == "queued"
    raw = client.xrange(user_stream_key(5))[0][1][FIELD]
    assert "u5@example.com" not in raw and "@" not in raw


def test_a_failed_append_fails_the_handler_and_the_retry_streams_it_once(
    db: Database, client: redis.Redis
) -> None:
    tasks = RecordingTasks()
    flaky = logic.Outlets(tasks, FlakyStreams(UserStreams(client), failures=1))
    event = UserRegistered(user_id=5)
    doc = messages.welcome(event, user(5))
    with pytest.raises(redis.ConnectionError):
        logic.record(db, flaky, event, doc)
    assert db[logic.COLLECTION].count_documents({"event_id": str(event.event_id)}) == 1
    assert stream_of(client, 5) == []  # stored, not yet streamed: the retry must stream it
    logic.record(db, flaky, event, doc)  # the event, retried
    logic.record(db, flaky, event, doc)  # and redelivered once more
    assert [e["event_id"] for e in stream_of(client, 5)] == [str(event.event_id)]
    assert db[logic.COLLECTION].count_documents({"event_id": str(event.event_id)}) == 1
    assert len(tasks.sent) == 1


def test_the_stream_keeps_about_its_window(db: Database, client: redis.Redis) -> None:
    streams = UserStreams(client)
    made = [
        streams.append(logic.to_out(notification_doc(7, n)))
        for n in range(USER_STREAM_MAXLEN + 150)
    ]
    length = client.xlen(user_stream_key(7))
    assert USER_STREAM_MAXLEN <= length < len(made)  # trimmed, approximately (whole nodes)
    assert client.xrevrange(user_stream_key(7), count=1)[0][0] == made[-1]


def notification_doc(user_id: int, n: int, at: datetime = STAMP) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "key": f"e{n}-{user_id}",
        "event_id": f"e{n}",
        "type": "user.registered",
        "userId": user_id,
        "title": f"title {n}",
        "body": "",
        "createdAt": at,
    }


# ----------------------------------------------------------------- paging


def test_pages_break_ties_of_the_same_instant_by_id(db: Database) -> None:
    docs = [notification_doc(8, n) for n in range(5)]  # one instant: the id orders them
    db[logic.COLLECTION].insert_many(docs)
    seen, before = [], None
    while True:
        page = logic.list_for_user(db, ListRequest(user_id=8, limit=2, before=before))
        seen += [n.id for n in page.items]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [str(d["_id"]) for d in reversed(docs)]


# ----------------------------------------------------------------- the e-mail's status


def status_of(db: Database, key: str) -> tuple[str | None, datetime | None]:
    doc = db[logic.COLLECTION].find_one({"key": key})
    assert doc is not None
    out = logic.to_out(doc)
    return out.email_status, out.sent_at


def test_sent_and_failed_are_shown_and_a_later_send_wins(
    db: Database, settings: Settings, client: redis.Redis
) -> None:
    event = welcome(db, logic.Outlets(RecordingTasks(), UserStreams(client)))
    key = logic.notification_key(event, 5)
    assert status_of(db, key) == ("queued", None)
    assert actors.mark_email_failed(db, key) is True
    assert status_of(db, key) == ("failed", None)
    before = datetime.now(UTC)
    assert actors.deliver_email(db, settings, key) is True
    status, sent_at = status_of(db, key)
    assert status == "sent" and sent_at is not None and sent_at >= before.replace(microsecond=0)
    assert actors.mark_email_failed(db, key) is False  # a sent e-mail never turns failed
    assert status_of(db, key)[0] == "sent"


def test_a_notification_without_email_has_no_status(db: Database) -> None:
    doc = notification_doc(9, 1)
    db[logic.COLLECTION].insert_one(doc)
    assert status_of(db, doc["key"]) == (None, None)


@pytest.fixture
def broker(db: Database, settings: Settings) -> Iterator[tuple[StubBroker, dict[str, Settings]]]:
    """Dramatiq's StubBroker (Retries included) with the EmailOutcome middleware after it,
    and the e-mail actor over the test database; ``config["now"]`` is the settings it uses."""
    stub = StubBroker()
    actors.add_outcome(stub, lambda: db)
    config = {"now": settings}

    def send_email(key: str) -> None:
        actors.deliver_email(db, config["now"], key)

    dramatiq.actor(
        broker=stub,
        actor_name=SEND_EMAIL_ACTOR,
        queue_name=EMAIL_QUEUE,
        max_retries=2,
        min_backoff=10,
        max_backoff=20,
    )(send_email)
    stub.emit_after("process_boot")
    yield stub, config
    stub.close()


def run(stub: StubBroker) -> None:
    worker = dramatiq.Worker(stub, worker_timeout=50)
    worker.start()
    try:
        stub.join(EMAIL_QUEUE, fail_fast=False)
        worker.join()
    finally:
        worker.stop()


def test_an_email_dramatiq_gives_up_on_is_failed_then_sent_when_replayed(
    db: Database,
    settings: Settings,
    client: redis.Redis,
    broker: tuple[StubBroker, dict[str, Settings]],
) -> None:
    stub, config = broker
    event = welcome(db, logic.Outlets(RecordingTasks(), UserStreams(client)))
    key = logic.notification_key(event, 5)
    smtp_down = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    config["now"] = settings.model_copy(update={"smtp_url": smtp_down})
    stub.enqueue(dramatiq.Message(EMAIL_QUEUE, SEND_EMAIL_ACTOR, (key,), {}, {}))
    run(stub)
    [dead] = stub.dead_letters
    assert dead.options["retries"] == 3  # the first attempt and every retry failed
    assert status_of(db, key) == ("failed", None)

    config["now"] = settings  # SMTP back (here: the mail folder); replay the dead letter
    stub.enqueue(dramatiq.Message(EMAIL_QUEUE, SEND_EMAIL_ACTOR, dead.args, {}, {}))
    run(stub)
    assert status_of(db, key)[0] == "sent"
    assert [p.name for p in (settings.mesh_var_dir / "mail").glob("*.eml")] == [f"{key}.eml"]


def test_an_email_that_fails_once_then_succeeds_is_never_failed(
    db: Database,
    settings: Settings,
    client: redis.Redis,
    broker: tuple[StubBroker, dict[str, Settings]],
) -> None:
    stub, config = broker
    event = welcome(db, logic.Outlets(RecordingTasks(), UserStreams(client)))
    key = logic.notification_key(event, 5)
    down = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    attempts: list[str] = []

    class FirstAttemptFails(dramatiq.Middleware):
        def before_process_message(self, broker: Any, message: Any) -> None:
            attempts.append(message.message_id)
            config["now"] = down if len(attempts) == 1 else settings

    stub.add_middleware(FirstAttemptFails(), before=actors.EmailOutcome)
    stub.enqueue(dramatiq.Message(EMAIL_QUEUE, SEND_EMAIL_ACTOR, (key,), {}, {}))
    run(stub)
    assert len(attempts) == 2 and stub.dead_letters == []
    assert status_of(db, key)[0] == "sent"
    doc = db[logic.COLLECTION].find_one({"key": key})
    assert doc is not None and not doc.get("emailFailed")
